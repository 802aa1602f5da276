import type { Logger } from '../log.js';
import type { RecordCollection } from '../store/store.js';
import type { Job } from './job.js';

export interface JobLeasesOptions {
  jobs: RecordCollection<Job>;
  logger: Logger;
  /** How long a claim on a job lasts without renewal (DATABASE_LEASE_MS): renewed every third of it. */
  leaseMs: number;
  /** How often stale jobs (a dead replica's) are looked for; default a third of the lease. */
  claimEveryMs?: number;
}

/** Jobs per claimStale call, and ids per renew call: each one short statement. */
const BATCH = 200;

/**
 * Which jobs this replica works on, and its leases on them (store.ts: claimStale, renew, release).
 * A job starts leased to the replica that made it; a heartbeat renews the leases of every job held
 * here; a job whose lease another replica took (this one paused or lost the database past the
 * lease) is "lost": its queued calls are skipped and its results are not written (the worker
 * writes with putIfLeased, so a late write cannot land either). Periodically, jobs whose lease
 * expired — their replica died — are claimed (FOR UPDATE SKIP LOCKED: each by one replica) and
 * handed to the worker.
 *
 * Holding is by object: `holds(job)` is true only for the very Job object handed to `hold`, so
 * a job lost and claimed again is a new object and calls queued for the old one stay skipped.
 */
export class JobLeases {
  private readonly held = new Map<string, Job>();
  private heartbeat: NodeJS.Timeout | undefined;
  private claiming: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;

  constructor(private readonly o: JobLeasesOptions) {}

  get size(): number {
    return this.held.size;
  }

  hold(job: Job): void {
    this.held.set(job.id, job);
  }

  holds(job: Job): boolean {
    return this.held.get(job.id) === job;
  }

  /** The job is finished (archived) or lost: no longer ours. */
  drop(job: Job): void {
    if (this.held.get(job.id) === job) this.held.delete(job.id);
  }

  /**
   * Claims stale jobs (not held here already) while `wanted()` says there is room; answers them,
   * each now held. At start this picks up what a crash of this replica, or any dead replica, left.
   */
  async claim(wanted: () => boolean): Promise<Job[]> {
    const taken: Job[] = [];
    while (!this.stopped && wanted()) {
      const batch = await this.o.jobs.claimStale(BATCH, this.o.leaseMs);
      for (const job of batch) {
        // Our own job whose lease ran out before the heartbeat renewed it: claiming renewed it; we work on it already.
        if (this.held.has(job.id)) continue;
        this.held.set(job.id, job);
        taken.push(job);
      }
      if (batch.length < BATCH) break;
    }
    return taken;
  }

  /**
   * Starts the heartbeat and the periodic claim: `claim` takes over stale jobs, `lost` is told of
   * each job whose lease another replica took, `save` retries writes that failed (the store was down).
   */
  start(p: { claim: () => Promise<void>; lost: (job: Job) => void; save: () => Promise<void> }): void {
    if (this.heartbeat || this.stopped) return;
    const every = Math.max(100, Math.floor(this.o.leaseMs / 3));
    this.heartbeat = setInterval(() => void this.beat(p.lost, p.save), every);
    this.heartbeat.unref();
    this.claiming = setInterval(() => {
      p.claim().catch((err: unknown) => this.o.logger.warn({ err }, 'task-sync: could not look for stale jobs; trying again shortly'));
    }, this.o.claimEveryMs ?? every);
    this.claiming.unref();
  }

  /** Renews every lease held here; a job missing from the answer was taken over: lost. */
  private async beat(lost: (job: Job) => void, save: () => Promise<void>): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    // Results the store refused earlier (it was unavailable): written now, if it answers again.
    await save().catch((err: unknown) => this.o.logger.warn({ err }, 'task-sync: results still not written; trying again shortly'));
    try {
      const jobs = [...this.held.values()];
      for (let i = 0; i < jobs.length; i += BATCH) {
        const part = jobs.slice(i, i + BATCH);
        const kept = new Set(await this.o.jobs.renew(part.map((j) => j.id), this.o.leaseMs));
        for (const job of part) {
          if (kept.has(job.id) || !this.holds(job)) continue;
          this.held.delete(job.id);
          this.o.logger.warn({ jobId: job.id }, 'task-sync job taken over by another replica (this one lost its lease): it stops working on it');
          lost(job);
        }
      }
    } catch (err) {
      // The database is down: nothing is lost yet; leases that run out meanwhile may be taken over.
      this.o.logger.warn({ err }, 'task-sync: could not renew job leases; trying again shortly');
    } finally {
      this.busy = false;
    }
  }

  /** No more heartbeats or claims; the leases held are given up so another replica may take the jobs at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearInterval(this.claiming);
    const ids = [...this.held.keys()];
    this.held.clear();
    for (let i = 0; i < ids.length; i += BATCH) await this.o.jobs.release(ids.slice(i, i + BATCH)).catch(() => undefined);
  }
}
