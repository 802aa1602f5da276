import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock.js';
import { AppError, Conflict, Unavailable } from '../errors.js';
import type { Logger } from '../log.js';
import type { KeySpace, RecordCollection } from '../store/store.js';
import type { Job } from './job.js';
import type { QueueCost } from './queue-bounds.js';
import { recordIdProblem } from './record-headers.js';
import type { TaskSyncWorker } from './worker.js';

const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** The body of POST /api/task-sync: one record or a batch, as the Flask bot took it. */
export function taskSyncRequestSchema(limits: { maxRecords: number; maxTimeoutSec: number }) {
  // Any Unicode is fine (it reaches the upstream percent-encoded in headers, as sent in the body);
  // only what cannot be sent at all is refused.
  const recordId = z
    .string()
    .trim()
    .min(1, 'must be a non-empty string')
    .max(1024, 'must be at most 1024 characters')
    .superRefine((id, ctx) => {
      const problem = recordIdProblem(id);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });
  return z
    .object({
      webhookUrl: z.string({ error: 'is required: the upstream URL to call' }).trim().min(1, 'is required').max(2048),
      recordId: recordId.optional(),
      records: z
        .array(recordId, { error: 'must be an array of record id strings' })
        .min(1, 'must hold at least 1 record')
        .max(limits.maxRecords, `must hold at most ${limits.maxRecords} records`)
        .optional(),
      timeout: z
        .number({ error: 'must be a number of seconds' })
        .positive('must be greater than 0')
        .max(limits.maxTimeoutSec, `must be at most ${limits.maxTimeoutSec} seconds (TASK_SYNC_MAX_TIMEOUT)`)
        .optional(),
    })
    .refine((b) => (b.recordId === undefined) !== (b.records === undefined), {
      message: 'send either recordId (one record) or records (a batch), not both and not neither',
      path: ['recordId'],
    });
}

export type TaskSyncRequest = z.infer<ReturnType<typeof taskSyncRequestSchema>>;

interface IdempotencyEntry {
  jobId: string;
  fingerprint: string;
}

export interface TaskSyncOptions {
  jobs: RecordCollection<Job>;
  idempotency: KeySpace<IdempotencyEntry>;
  worker: TaskSyncWorker;
  flush: () => Promise<void>;
  clock: Clock;
  logger: Logger;
  assertAllowed: (url: string) => URL;
  defaultTimeoutSec: number;
}

export interface Submission {
  job: Job;
  /** True when an Idempotency-Key matched an earlier request and no new job was made. */
  replayed: boolean;
}

/** Creates the job durably (before anyone is answered) and hands it to the worker. */
export function createTaskSync(o: TaskSyncOptions) {
  /** `idempotency` is the client's key as sent and scoped to its token (see src/http/idempotency-key.ts). */
  async function submit(input: TaskSyncRequest, client: string, idempotency?: { key: string; scoped: string }): Promise<Submission> {
    // The normalised URL is stored and called: exactly what the allow-list checked.
    const webhookUrl = o.assertAllowed(input.webhookUrl).href;
    const records = input.records ?? [input.recordId!];
    const mode = input.records ? 'batch' : 'single';
    const timeoutSec = input.timeout ?? o.defaultTimeoutSec;

    const scoped = idempotency?.scoped;
    const fingerprint = scoped === undefined ? '' : createHash('sha256').update(JSON.stringify([webhookUrl, mode, records, timeoutSec])).digest('hex');

    // Room in the queue first (synchronous: a burst at the bound never overshoots it). A full
    // queue still answers a replay: its job exists already and takes no new room.
    let cost: QueueCost;
    try {
      cost = o.worker.admit(client, webhookUrl, records);
    } catch (err) {
      const replay = err instanceof AppError && scoped !== undefined ? await replayOf(scoped, fingerprint) : undefined;
      if (replay) return { job: replay, replayed: true };
      throw err;
    }
    try {
      return await create(client, idempotency, { webhookUrl, records, mode, timeoutSec, fingerprint, cost });
    } catch (err) {
      o.worker.release(client, cost);
      throw err;
    }
  }

  /** Makes the job whose room `cost` was taken; a replay instead gives the room back. */
  async function create(
    client: string,
    idempotency: { key: string; scoped: string } | undefined,
    p: { webhookUrl: string; records: string[]; mode: 'single' | 'batch'; timeoutSec: number; fingerprint: string; cost: QueueCost },
  ): Promise<Submission> {
    const { webhookUrl, records, mode, timeoutSec, fingerprint } = p;
    const scoped = idempotency?.scoped;
    const jobId = randomUUID();
    if (scoped !== undefined) {
      // Claim the key before making the job: of two concurrent requests with one key, one wins.
      const won = await claimOrUnavailable(() => o.idempotency.claim(scoped, { jobId, fingerprint }, o.clock.now() + IDEMPOTENCY_TTL_MS));
      if (!won) {
        const replay = await replayOf(scoped, fingerprint);
        if (replay) {
          o.worker.release(client, p.cost);
          return { job: replay, replayed: true };
        }
        // The key names a job that was never saved (its request failed): this request takes it over.
        await claimOrUnavailable(() => o.idempotency.set(scoped, { jobId, fingerprint }, o.clock.now() + IDEMPOTENCY_TTL_MS).then(() => true));
      }
    }

    const now = new Date(o.clock.now()).toISOString();
    const job: Job = {
      id: jobId,
      mode,
      webhookUrl,
      records,
      timeoutSec,
      status: 'queued',
      results: records.map(() => null),
      createdAt: now,
      updatedAt: now,
      completedAt: null,
      client,
      ...(idempotency ? { idempotencyKey: idempotency.key } : {}),
    };
    try {
      await o.jobs.put(job);
    } catch (err) {
      o.logger.error({ err, jobId: job.id }, 'could not persist task-sync job');
      await o.jobs.remove(job.id).catch(() => undefined);
      if (scoped) await o.idempotency.delete(scoped).catch(() => undefined);
      throw new Unavailable('the job could not be saved (the store does not take writes); nothing was sent, try again');
    }
    o.worker.submit(job, true);
    return { job, replayed: false };
  }

  /** The job an earlier request with this key made, once its write is on disk; 409 for another body. */
  async function replayOf(scoped: string, fingerprint: string): Promise<Job | undefined> {
    const seen = await o.idempotency.get(scoped);
    if (!seen) return undefined;
    if (seen.fingerprint !== fingerprint) throw new Conflict('Idempotency-Key was already used with a different request body', { jobId: seen.jobId });
    let job = await o.jobs.get(seen.jobId);
    if (!job) {
      await o.flush(); // the first request's job may still be on its way to disk
      job = await o.jobs.get(seen.jobId);
    }
    if (job) await o.flush();
    return job;
  }

  async function claimOrUnavailable(claim: () => Promise<boolean>): Promise<boolean> {
    try {
      return await claim();
    } catch (err) {
      o.logger.error({ err }, 'could not persist an idempotency key');
      throw new Unavailable('the request could not be saved (the store does not take writes); nothing was sent, try again');
    }
  }

  return { submit };
}
