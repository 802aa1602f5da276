import Koa from 'koa';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { requireBearer } from './http/auth.js';
import { readBody } from './http/body.js';
import { renderErrors, type ErrorReporter } from './http/errors-middleware.js';
import { healthRoutes, type ReadinessCheck } from './http/health-routes.js';
import type { ApprovalEngine } from './flows/approval-engine.js';
import { businessCallbackRoutes } from './flows/callback-routes.js';
import type { FlowRegistry } from './flows/flow-registry.js';
import { externalOptionsRoutes } from './flows/options-routes.js';
import { createEventDispatcher, larkIntakeRoutes, type IntakeOptions } from './lark/event-intake.js';
import type { EventDispatcher } from './lark/event-intake.js';
import type { UpstreamClient } from './upstream/client.js';
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

function flowsReadiness(flows: FlowRegistry): ReadinessCheck {
  return {
    name: 'flows',
    async check() {
      if (!flows.loaded) return { ok: false, detail: 'flows not loaded yet' };
      const problems = flows.problems();
      return { ok: true, ...(problems.length ? { detail: `${flows.all().length} loaded, ${problems.length} problem(s) in flow files (see log)` } : { detail: `${flows.all().length} loaded` }) };
    },
  };
}

export interface AppDeps {
  config: Config;
  logger: Logger;
  clock: Clock;
  store: Store;
  worker: TaskSyncWorker;
  /** Absent when Lark is not configured. */
  messenger?: Messenger;
  flows: FlowRegistry;
  /** Absent when Lark is not configured. */
  engine?: ApprovalEngine;
  reportError?: ErrorReporter;
  upstream: UpstreamClient;
  /** The SDK dispatcher, when main shares it with the long connection. */
  dispatcher?: EventDispatcher;
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

  const health = healthRoutes(store, [flowsReadiness(deps.flows)]);
  const routers = [
    taskSyncRoutes({ taskSync, schema, jobs, worker: deps.worker, connectTimeoutMs: config.taskSync.connectTimeoutMs }),
    summaryRoutes({ messenger: deps.messenger, chats: config.chats }),
    externalOptionsRoutes(deps.flows, deps.upstream),
  ];
  const engine = deps.engine;
  if (engine) {
    const intake = intakeOptions(config, deps);
    const dispatcher = deps.dispatcher ?? createEventDispatcher(intake);
    routers.push(larkIntakeRoutes(intake, dispatcher), businessCallbackRoutes(engine, deps.flows, deps.clock));
  }
  const auth = requireBearer(config.auth);

  app.use(requestIds(logger));
  app.use(renderErrors(logger, deps.reportError ?? (() => undefined)));
  app.use(health.routes());
  // Lark and business callbacks under /api/v1/lark/ are signed instead of carrying a bearer token.
  app.use(async (ctx, next) => (ctx.path.startsWith('/api/') && !ctx.path.startsWith('/api/v1/lark/') ? auth(ctx, next) : next()));
  app.use(readBody(config.bodyLimitBytes));
  for (const r of routers) app.use(r.routes()).use(r.allowedMethods());
  return app;
}

/** How Lark events reach the engine: shared by the HTTP routes and the long connection. */
export function intakeOptions(config: Config, deps: Pick<AppDeps, 'store' | 'clock' | 'logger' | 'engine'>): IntakeOptions {
  const engine = deps.engine!;
  return {
    encryptKey: config.lark.encryptKey,
    verificationToken: config.lark.verificationToken,
    seenEvents: deps.store.keys<number>('lark-events'),
    clock: deps.clock,
    logger: deps.logger,
    handlers: {
      approvalTask: (ev) => engine.acceptTaskEvent(ev),
      cardAction: async (action) => {
        if (action.value.action !== 'retry') return { ok: false, message: 'Unknown action.' };
        const stage = action.value.stage === 'check' || action.value.stage === 'execute' ? action.value.stage : undefined;
        if (!stage) return { ok: false, message: 'Unknown stage.' };
        return engine.retry(String(action.value.runId ?? ''), stage, action.operatorOpenId);
      },
    },
  };
}
