import Koa from 'koa';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { requireBearer } from './http/auth.js';
import { readBody } from './http/body.js';
import { renderErrors, type ErrorReporter } from './http/errors-middleware.js';
import { healthRoutes } from './http/health-routes.js';
import { requestIds } from './http/request-id.js';
import { createUrlAllowList } from './jobs/allow-list.js';
import type { Job } from './jobs/job.js';
import { createTaskSync, taskSyncRequestSchema } from './jobs/task-sync.js';
import { taskSyncRoutes } from './jobs/task-sync-routes.js';
import type { TaskSyncWorker } from './jobs/worker.js';
import type { Messenger } from './lark/messages.js';
import type { Logger } from './log.js';
import type { Store } from './store/store.js';
import { summaryRoutes } from './summary/summary-routes.js';

export interface AppDeps {
  config: Config;
  logger: Logger;
  clock: Clock;
  store: Store;
  worker: TaskSyncWorker;
  /** Absent when Lark is not configured. */
  messenger?: Messenger;
  reportError?: ErrorReporter;
}

/** Builds the Koa app from its parts. It does not listen: main.ts (or a test) does. */
export function createApp(deps: AppDeps): Koa {
  const { config, logger, store } = deps;
  const app = new Koa();
  app.proxy = true; // nginx in front sets X-Forwarded-*
  app.silent = true; // errors are logged by renderErrors, not by Koa's default handler

  const jobs = store.collection<Job>('jobs');
  const schema = taskSyncRequestSchema({ maxRecords: config.taskSync.maxRecords, maxTimeoutSec: config.taskSync.maxTimeoutSec });
  const taskSync = createTaskSync({
    jobs,
    idempotency: store.keys('idempotency'),
    worker: deps.worker,
    flush: () => store.flush(),
    clock: deps.clock,
    logger,
    assertAllowed: createUrlAllowList(config.taskSync.allowedPrefixes),
    defaultTimeoutSec: config.taskSync.defaultTimeoutSec,
  });

  const health = healthRoutes(store);
  const api = [
    taskSyncRoutes({ taskSync, schema, jobs, worker: deps.worker, connectTimeoutMs: config.taskSync.connectTimeoutMs }),
    summaryRoutes({ messenger: deps.messenger, chats: config.chats }),
  ];
  const auth = requireBearer(config.auth);

  app.use(requestIds(logger));
  app.use(renderErrors(logger, deps.reportError ?? (() => undefined)));
  app.use(health.routes());
  app.use(async (ctx, next) => (ctx.path.startsWith('/api/') ? auth(ctx, next) : next()));
  app.use(readBody(config.bodyLimitBytes));
  for (const r of api) app.use(r.routes()).use(r.allowedMethods());
  return app;
}
