import { setMaxListeners } from 'node:events';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { RecordCollection } from '../store/store.js';
import { backoffDelay } from '../backoff.js';
import { finalStatus, isFinal, pendingRecordIndexes, type Job, type JobStatus, type RecordResult } from './job.js';
import type { UpstreamClient, UpstreamOutcome } from '../upstream/client.js';
import { FairQueue, type FairQueueLimits } from './fair-queue.js';
import { costOf, QueueBounds, type QueueCost, type QueueLimits } from './queue-bounds.js';
import { recordHeaders } from './record-headers.js';
import { JobLeases } from './job-leases.js';
import { DEFAULT_LEASE_MS } from '../store/store-owner.js';
import type { AcceptGate } from '../accept-first.js';
import { detached } from '../detached.js';

export interface WorkerOptions {
  jobs: RecordCollection<Job>;
  upstream: UpstreamClient;
  clock: Clock;
  logger: Logger;
  /** Calls at once: in all, per client, per upstream host. */
  concurrency: FairQueueLimits;
  /** How much unfinished work may be queued, per client and in all. */
  bounds: QueueLimits;
  /** Extra tries after the first on a retryable failure: 2 means at most 3 calls per record. */
  retries: number;
  /** The first backoff; it doubles per retry, with jitter (src/backoff.ts). */
  retryBaseMs: number;
  /** The jitter's source, in [0, 1); injected so tests can pin the delays. */
  random?: () => number;
  /** How long this replica's claim on a job lasts without renewal (DATABASE_LEASE_MS); default 30 s. */
  leaseMs?: number;
  /** Yield to the accept path: at most `burstConcurrency` calls while the gate reports pressure. */
  acceptFirst?: { gate: AcceptGate; burstConcurrency: number };
}

/**
 * Sends the records of task-sync jobs upstream, with a fair share of the concurrency for each
 * client and host (src/jobs/fair-queue.ts), and keeps the unfinished work within its bounds
 * (src/jobs/queue-bounds.ts). Each record result is persisted as it lands; a finished job is
 * archived. A record waiting for its backoff does not hold a concurrency slot.
 *
 * Several replicas (src/jobs/job-leases.ts): a replica works only on jobs it holds the lease of
 * (those it made, and those it claimed once their replica died), and writes a job only while it
 * holds that lease (putIfLeased / archiveIfLeased), so a replica that lost a job can neither
 * send its queued records nor overwrite the new holder's results.
 */
export class TaskSyncWorker {
  private readonly queue: FairQueue;
  readonly bounds: QueueBounds;
  /** Jobs finished since start, by final status (GET /api/status, /metrics). */
  readonly finished = new Map<JobStatus, number>();
  private readonly waiters = new Map<string, Set<(job: Job | undefined) => void>>();
  /** No new work starts. */
  private readonly stopping = new AbortController();
  /** Calls still running when the stop's grace is over are cut (their records resume on the next start). */
  private readonly cancelling = new AbortController();
  private recording = 0;
  private recorded: (() => void) | null = null;
  private readonly leases: JobLeases;
  /** Jobs whose last write failed (the store was unavailable): written again by the heartbeat. */
  private readonly unsaved = new Set<Job>();
  /** Jobs counted in `finished` (once), and jobs archived by this replica. */
  private readonly counted = new WeakSet<Job>();
  private readonly archived = new WeakSet<Job>();

  constructor(private readonly o: WorkerOptions) {
    // Every running call and every retry backoff listens on these: hundreds at once is normal,
    // not a leak (Node's default warns past 10, on stderr, outside the JSON log).
    setMaxListeners(0, this.stopping.signal, this.cancelling.signal);
    const first = o.acceptFirst;
    this.queue = new FairQueue(
      o.concurrency,
      (err, task) => {
        o.logger.error({ err, jobId: task.group }, 'task-sync record failed unexpectedly');
      },
      first ? () => (first.gate.underPressure ? first.burstConcurrency : o.concurrency.concurrency) : undefined,
    );
    first?.gate.onRelief(() => this.queue.wake());
    this.bounds = new QueueBounds(o.bounds, o.clock, o.logger);
    this.leases = new JobLeases({ jobs: o.jobs, logger: o.logger, leaseMs: o.leaseMs ?? DEFAULT_LEASE_MS });
  }

  /** Takes room in the queue for a job about to be made, or throws 429/503/413 (see QueueBounds.admit). */
  admit(client: string, webhookUrl: string, records: readonly string[]): QueueCost {
    const cost = costOf(webhookUrl, records);
    this.bounds.admit(client, cost);
    return cost;
  }

  /** Gives back the room of a job that `admit` let in but that was not made after all. */
  release(client: string, cost: QueueCost): void {
    this.bounds.remove(client, cost, false);
  }

  /**
   * Queues every record of the job that has no final result yet. `admitted`: the job's room was
   * taken by admit(); without it (a job resumed at start) the job is counted whatever the bounds.
   */
  submit(job: Job, admitted = false): void {
    this.leases.hold(job); // made here (put leased it to us) or claimed
    const pending = pendingRecordIndexes(job);
    if (!admitted) this.bounds.add(clientOf(job), costOf(job.webhookUrl, pending.map((i) => job.records[i]!)));
    // Not in the submitting request's context: the job outlives the request (src/detached.ts).
    detached(() => {
      for (const index of pending) this.enqueue(job, index, 1);
    });
  }

  /** Unfinished records and bytes, calls running and calls waiting for a slot. */
  depth(): { records: number; bytes: number; running: number; waiting: number } {
    return { ...this.bounds.usage(), running: this.queue.pending, waiting: this.queue.size };
  }

  /** Per client: unfinished records and bytes, and calls running. */
  clients(): Array<{ client: string; records: number; bytes: number; running: number }> {
    return this.bounds.clients().map((c) => ({ ...c, running: this.queue.runningFor(c.client) }));
  }

  /**
   * Picks up jobs a crash or stop left unfinished (this replica's, or a dead replica's: their
   * lease has expired), then keeps doing so periodically and renews the leases of the jobs in
   * work. Returns how many were resumed now.
   */
  async resume(): Promise<number> {
    const resumed = await this.takeOver(() => true);
    this.leases.start({
      // Later claims take only what the bounds have room for: a live replica with room takes the rest.
      claim: async () => void (await this.takeOver(() => !this.stopping.signal.aborted && this.bounds.usage().records < this.o.bounds.maxRecords)),
      lost: (job) => this.lose(job),
      save: () => this.saveUnsaved(),
    });
    return resumed;
  }

  /** Claims stale jobs and works them: finished ones are archived, the others queued. */
  private async takeOver(wanted: () => boolean): Promise<number> {
    let resumed = 0;
    for (const job of await this.leases.claim(wanted)) {
      if (!isFinal(job) && pendingRecordIndexes(job).length > 0) {
        this.submit(job);
        resumed++;
        continue;
      }
      // Every record has its result, the archive was cut (a crash): archive it now. A job
      // already final was counted by the process that finished it.
      if (isFinal(job)) this.counted.add(job);
      await this.save(job).catch((err: unknown) => this.o.logger.warn({ err, jobId: job.id }, 'task-sync: a finished job could not be archived yet; trying again shortly'));
    }
    if (resumed) this.o.logger.info({ jobs: resumed }, 'task-sync: resumed unfinished jobs');
    return resumed;
  }

  /** Resolves with the job once it is final, or with undefined after `ms`. */
  waitForFinish(job: Job, ms: number): Promise<Job | undefined> {
    if (isFinal(job)) return Promise.resolve(job);
    return new Promise((resolve) => {
      const set = this.waiters.get(job.id) ?? new Set();
      this.waiters.set(job.id, set);
      const timeout = new AbortController();
      const done = (j: Job | undefined) => {
        if (!set.delete(done)) return;
        timeout.abort();
        if (set.size === 0) this.waiters.delete(job.id);
        resolve(j);
      };
      set.add(done);
      void this.o.clock.sleep(ms, timeout.signal).then(() => done(undefined));
    });
  }

  /**
   * Stops taking work and lets running calls finish for up to graceMs, then cuts the rest.
   * Records without a final result stay as they are on disk, for resume() on the next start.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping.abort();
    this.queue.pause();
    this.queue.clear();
    const graceOver = new AbortController();
    await Promise.race([this.queue.onIdle(), this.o.clock.sleep(graceMs, graceOver.signal)]);
    graceOver.abort();
    if (this.queue.pending > 0) {
      this.o.logger.warn({ calls: this.queue.pending, graceMs }, 'task-sync calls still running at stop: cut; their records are sent again on the next start');
      this.cancelling.abort();
      await this.queue.onIdle();
    }
    await new Promise<void>((resolve) => {
      // Results of calls that just ended are still being written: let them land.
      if (this.recording === 0) return resolve();
      this.recorded = resolve;
    });
    // Anyone still waiting is answered "not finished yet"; the job resumes on the next start.
    for (const set of this.waiters.values()) for (const notify of [...set]) notify(undefined);
    await this.saveUnsaved().catch(() => undefined);
    // Our unfinished jobs are released: another replica takes them at once, or this one at its next start.
    await this.leases.stop();
  }

  private enqueue(job: Job, index: number, attempt: number): void {
    if (this.stopping.signal.aborted || !this.leases.holds(job)) return;
    this.queue.add({
      client: clientOf(job),
      host: new URL(job.webhookUrl).host,
      group: job.id,
      // Only the upstream call holds a slot; recording the result happens after it, so a slow
      // disk write never throttles the calls.
      run: async () => {
        const outcome = await this.call(job, index);
        if (outcome) {
          this.record(job, index, attempt, outcome).catch((err: unknown) => {
            this.o.logger.error({ err, jobId: job.id }, 'task-sync result could not be recorded');
          });
        }
      },
    });
  }

  private async call(job: Job, index: number): Promise<UpstreamOutcome | undefined> {
    // A job another replica took over is its now: it sends this record (same idempotency key).
    if (this.stopping.signal.aborted || job.results[index] || !this.leases.holds(job)) return undefined;
    const recordId = job.records[index]!;
    if (job.status === 'queued') job.status = 'running';
    return this.o.upstream.postJson(
      job.webhookUrl,
      { recordId },
      // Delivery is at-least-once (a crash mid-call re-sends): these let the upstream dedupe.
      recordHeaders(job.id, recordId),
      // One deadline for the whole call: connect, send, headers, body (src/upstream/client.ts).
      job.timeoutSec * 1000,
      undefined,
      this.cancelling.signal,
    );
  }

  private async record(job: Job, index: number, attempt: number, outcome: UpstreamOutcome): Promise<void> {
    const recordId = job.records[index]!;
    // Lost meanwhile: the result is not ours to write; the new holder sends the record again.
    if (!this.leases.holds(job)) return;
    // Cut by a stop: the call proves nothing; the record stays unfinished and is sent again on the next start.
    if (outcome.kind === 'failure' && outcome.cancelled) return;
    if (outcome.kind === 'failure' && outcome.retryable && attempt <= this.o.retries) {
      // Stopping: leave the record without a result, so the next start tries it again.
      if (this.stopping.signal.aborted) return;
      const delay = backoffDelay(attempt, this.o.retryBaseMs, undefined, this.o.random);
      this.o.logger.debug({ jobId: job.id, recordId, attempt, delay, error: outcome.error }, 'task-sync retry');
      void this.o.clock.sleep(delay, this.stopping.signal).then(() => {
        this.enqueue(job, index, attempt + 1);
      });
      return;
    }
    job.results[index] = toResult(recordId, outcome, attempt);
    job.updatedAt = new Date(this.o.clock.now()).toISOString();
    const last = pendingRecordIndexes(job).length === 0;
    // The room is given back once the result is in memory: the write below may lag, the queue does not grow.
    this.bounds.remove(clientOf(job), { records: 1, bytes: Buffer.byteLength(recordId) + (last ? Buffer.byteLength(job.webhookUrl) : 0) }, true);
    this.recording++;
    try {
      await this.save(job);
    } finally {
      if (--this.recording === 0) this.recorded?.();
    }
  }

  /**
   * Writes the job's progress, or archives it once every record has a result, only while this
   * replica holds its lease. A write that fails (store unavailable) is tried again by the
   * heartbeat; a job another replica took over is dropped here.
   */
  private async save(job: Job): Promise<void> {
    if (this.archived.has(job) || !this.leases.holds(job)) return;
    let kept: boolean;
    try {
      kept = isFinal(job) || pendingRecordIndexes(job).length === 0 ? await this.finish(job) : await this.o.jobs.putIfLeased(job);
    } catch (err) {
      this.unsaved.add(job);
      throw err;
    }
    this.unsaved.delete(job);
    if (!kept) this.lose(job);
  }

  private async saveUnsaved(): Promise<void> {
    for (const job of [...this.unsaved]) await this.save(job);
  }

  private async finish(job: Job): Promise<boolean> {
    if (!job.completedAt) {
      const now = new Date(this.o.clock.now()).toISOString();
      job.status = finalStatus(job.results as RecordResult[]);
      job.completedAt = now;
      job.updatedAt = now;
    }
    // Counted as the status is set: a reader who sees the job final sees it counted.
    if (!this.counted.has(job)) {
      this.counted.add(job);
      this.finished.set(job.status, (this.finished.get(job.status) ?? 0) + 1);
    }
    if (!(await this.o.jobs.archiveIfLeased(job))) return false;
    this.archived.add(job);
    this.leases.drop(job);
    this.o.logger.info({ jobId: job.id, status: job.status, records: job.records.length }, 'task-sync job finished');
    for (const notify of [...(this.waiters.get(job.id) ?? [])]) notify(job);
    return true;
  }

  /** Another replica holds the job now: forget it here, give its room back, stop counting it. */
  private lose(job: Job): void {
    this.leases.drop(job);
    this.unsaved.delete(job);
    if (this.archived.has(job)) return;
    if (this.counted.delete(job)) this.finished.set(job.status, (this.finished.get(job.status) ?? 1) - 1);
    const pending = pendingRecordIndexes(job).map((i) => job.records[i]!);
    if (pending.length) this.bounds.remove(clientOf(job), costOf(job.webhookUrl, pending), false);
    for (const notify of [...(this.waiters.get(job.id) ?? [])]) notify(undefined);
  }
}

/** Jobs made before tokens were recorded belong to no token: they share one lane. */
function clientOf(job: Job): string {
  return job.client ?? 'anonymous';
}

function toResult(recordId: string, outcome: UpstreamOutcome, attempts: number): RecordResult {
  switch (outcome.kind) {
    case 'success':
      return { recordId, status: 'success', httpStatus: outcome.httpStatus, durationMs: outcome.durationMs, attempts, response: outcome.response };
    case 'timeout':
      return { recordId, status: 'accepted', durationMs: outcome.durationMs, attempts, error: outcome.error };
    case 'failure':
      return {
        recordId,
        status: 'error',
        ...(outcome.httpStatus !== undefined ? { httpStatus: outcome.httpStatus } : {}),
        durationMs: outcome.durationMs,
        attempts,
        ...(outcome.response !== undefined ? { response: outcome.response } : {}),
        error: outcome.error,
      };
  }
}
