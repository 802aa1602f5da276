import PQueue from 'p-queue';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { RecordCollection } from '../store/store.js';
import { backoffDelay } from '../backoff.js';
import { finalStatus, isFinal, pendingRecordIndexes, type Job, type RecordResult } from './job.js';
import type { UpstreamClient, UpstreamOutcome } from '../upstream/client.js';

export interface WorkerOptions {
  jobs: RecordCollection<Job>;
  upstream: UpstreamClient;
  clock: Clock;
  logger: Logger;
  concurrency: number;
  /** Extra tries after the first on a retryable failure: 2 means at most 3 calls per record. */
  retries: number;
  /** The first backoff; it doubles per retry, with jitter (src/backoff.ts). */
  retryBaseMs: number;
  /** The jitter's source, in [0, 1); injected so tests can pin the delays. */
  random?: () => number;
}

/**
 * Sends the records of task-sync jobs upstream, at most `concurrency` calls at once across all
 * jobs. Each record result is persisted as it lands; a finished job is archived. A record waiting
 * for its backoff does not hold a concurrency slot.
 */
export class TaskSyncWorker {
  private readonly queue: PQueue;
  private readonly waiters = new Map<string, Set<(job: Job | undefined) => void>>();
  private readonly stopping = new AbortController();
  private recording = 0;
  private recorded: (() => void) | null = null;

  constructor(private readonly o: WorkerOptions) {
    this.queue = new PQueue({ concurrency: o.concurrency });
  }

  /** Queues every record of the job that has no final result yet. */
  submit(job: Job): void {
    for (const index of pendingRecordIndexes(job)) this.enqueue(job, index, 1);
  }

  /** Picks up jobs a crash or stop left unfinished. Returns how many were resumed. */
  async resume(): Promise<number> {
    let resumed = 0;
    for (const job of await this.o.jobs.live()) {
      if (isFinal(job)) {
        await this.o.jobs.archive(job);
      } else if (pendingRecordIndexes(job).length === 0) {
        await this.finish(job);
      } else {
        this.submit(job);
        resumed++;
      }
    }
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

  /** Stops taking work, lets running calls finish (up to graceMs); unfinished records stay for resume(). */
  async stop(graceMs: number): Promise<void> {
    this.stopping.abort();
    this.queue.pause();
    this.queue.clear();
    await Promise.race([this.queue.onIdle(), this.o.clock.sleep(graceMs)]);
    await new Promise<void>((resolve) => {
      // Results of calls that just ended are still being written: let them land.
      if (this.recording === 0) return resolve();
      this.recorded = resolve;
    });
    // Anyone still waiting is answered "not finished yet"; the job resumes on the next start.
    for (const set of this.waiters.values()) for (const notify of [...set]) notify(undefined);
  }

  private enqueue(job: Job, index: number, attempt: number): void {
    if (this.stopping.signal.aborted) return;
    // Only the upstream call holds a concurrency slot; recording the result happens after it,
    // so a slow disk write never throttles the calls.
    this.queue
      .add(() => this.call(job, index))
      .then((outcome) => outcome && this.record(job, index, attempt, outcome))
      .catch((err: unknown) => {
        this.o.logger.error({ err, jobId: job.id }, 'task-sync record failed unexpectedly');
      });
  }

  private async call(job: Job, index: number): Promise<UpstreamOutcome | undefined> {
    if (this.stopping.signal.aborted || job.results[index]) return undefined;
    const recordId = job.records[index]!;
    if (job.status === 'queued') job.status = 'running';
    return this.o.upstream.postJson(
      job.webhookUrl,
      { recordId },
      // Delivery is at-least-once (a crash mid-call re-sends): these let the upstream dedupe.
      { 'x-bridge-job-id': job.id, 'x-bridge-record-id': recordId, 'idempotency-key': `${job.id}:${recordId}` },
      job.timeoutSec * 1000,
    );
  }

  private async record(job: Job, index: number, attempt: number, outcome: UpstreamOutcome): Promise<void> {
    const recordId = job.records[index]!;
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
    this.recording++;
    try {
      if (pendingRecordIndexes(job).length === 0) await this.finish(job);
      else await this.o.jobs.put(job);
    } finally {
      if (--this.recording === 0) this.recorded?.();
    }
  }

  private async finish(job: Job): Promise<void> {
    if (job.completedAt) return;
    const now = new Date(this.o.clock.now()).toISOString();
    job.status = finalStatus(job.results as RecordResult[]);
    job.completedAt = now;
    job.updatedAt = now;
    await this.o.jobs.archive(job);
    this.o.logger.info({ jobId: job.id, status: job.status, records: job.records.length }, 'task-sync job finished');
    for (const notify of [...(this.waiters.get(job.id) ?? [])]) notify(job);
  }
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
