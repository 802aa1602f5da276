import { Router } from '@koa/router';
import { NotFound } from '../errors.js';
import { parseJsonBody } from '../http/body.js';
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
}

const statusPath = (id: string) => `/api/task-sync/status/${id}`;

export function taskSyncRoutes(d: TaskSyncRouteDeps): Router {
  const router = new Router();

  router.post('/api/task-sync', async (ctx) => {
    const body = parseJsonBody(ctx, d.schema);
    const key = ctx.get('idempotency-key') || undefined;
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
  });

  router.get('/api/task-sync/status/:jobId', async (ctx) => {
    const job = await d.jobs.get(ctx.params.jobId!);
    if (!job) throw new NotFound(`no task-sync job ${ctx.params.jobId}`);
    ctx.body = jobView(job);
  });

  return router;
}
