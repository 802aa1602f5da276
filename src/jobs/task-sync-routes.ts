import { NotFound } from '../errors.js';
import { idempotencyKeyOf } from '../http/idempotency-key.js';
import { route, type Guard, type Route } from '../http/route.js';
import type { RecordCollection } from '../store/store.js';
import { jobView, type Job } from './job.js';
import type { createTaskSync, taskSyncRequestSchema } from './task-sync.js';
import type { TaskSyncWorker } from './worker.js';

export interface TaskSyncRouteDeps {
  taskSync: ReturnType<typeof createTaskSync>;
  schema: ReturnType<typeof taskSyncRequestSchema>;
  jobs: RecordCollection<Job>;
  worker: TaskSyncWorker;
  connectTimeoutMs: number;
  /** The bearer-token guard: a job belongs to the token that made it. */
  bearer: Guard;
}

const statusPath = (id: string) => `/api/task-sync/status/${encodeURIComponent(id)}`;

export function taskSyncRoutes(d: TaskSyncRouteDeps): Route[] {
  return [
    route({
      method: 'POST',
      path: '/api/task-sync',
      guard: d.bearer,
      body: d.schema,
      async handler(ctx, body) {
        const key = idempotencyKeyOf(ctx);
        const { job, replayed } = await d.taskSync.submit(body, ctx.state.client as string, key);
        if (replayed) ctx.set('Idempotent-Replayed', 'true');
        ctx.set('Location', statusPath(job.id));

        if (job.mode === 'single') {
          // Wait for the one call: its read timeout plus connect time and a little slack.
          const finished = await d.worker.waitForFinish(job, job.timeoutSec * 1000 + d.connectTimeoutMs + 2000);
          if (finished && finished.status !== 'accepted') {
            ctx.status = 200;
            ctx.body = jobView(finished);
            return;
          }
        }
        ctx.status = 202;
        ctx.set('Retry-After', '2');
        // A new batch is reported as it was accepted ("queued"), even if the worker already started it.
        const status = job.mode === 'batch' && !replayed ? 'queued' : job.status;
        ctx.body = { jobId: job.id, status, statusUrl: statusPath(job.id) };
      },
    }),
    route({
      method: 'GET',
      path: '/api/task-sync/status/:jobId',
      guard: d.bearer,
      async handler(ctx) {
        const id = ctx.params.jobId!;
        const job = await d.jobs.get(id);
        // Another token's job is as unknown as a job that never existed.
        if (!job || (job.client !== undefined && job.client !== ctx.state.client)) throw new NotFound(`no task-sync job ${id}`);
        ctx.body = jobView(job);
      },
    }),
  ];
}
