import Koa from 'koa';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { bearerToken } from './http/auth.js';
import { listRoutes, methodNotAllowed, routerFor, type Route, type RouteListing } from './http/route.js';
import { renderErrors, type ErrorReporter } from './http/errors-middleware.js';
import { flowsCheck, healthRoutes, storeCheck } from './http/health-routes.js';
import { statusRoutes } from './http/status-routes.js';
import type { RecentRunFailures } from './flows/recent-failures.js';
import type { TenantTokenCheck } from './lark/tenant-token.js';
import { httpMetrics } from './metrics/http-metrics.js';
import type { Metrics, Scrape } from './metrics/metrics.js';
import { metricsRoutes, metricsToken } from './metrics/metrics-routes.js';
import { observedUpstream } from './metrics/observed-upstream.js';
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
import type { Run } from './flows/run.js';
import { createTaskSync, taskSyncRequestSchema } from './jobs/task-sync.js';
import { taskSyncRoutes } from './jobs/task-sync-routes.js';
import type { TaskSyncWorker } from './jobs/worker.js';
import type { BotIdentity } from './lark/bot-info.js';
import type { Messenger } from './lark/messages.js';
import type { ChatReplies } from './pollers/replies/chat-replies.js';
import type { PostNewReplies } from './pollers/replies/replies-from-store.js';
import type { Logger } from './log.js';
import { pollerRoutes } from './pollers/poller-routes.js';
import type { Pollers } from './pollers/pollers.js';
import type { Store } from './store/store.js';
import type { SeenMark } from './lark/seen-events.js';
import { createSummaryDelivery, type Delivery } from './summary/summary-delivery.js';
import { summaryRoutes } from './summary/summary-routes.js';

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
  /** The bot's own open id (Lark configured): tells @mentions of the bot apart; a /readyz check. */
  botIdentity?: BotIdentity;
  /** @bot replies to issue cards (Lark configured). */
  chatReplies?: ChatReplies;
  /** The new-reply reminder the poller run calls with a source's new comments (Lark configured). */
  postNewReplies?: PostNewReplies;
  /** Poller flows on their schedules; main starts and stops them. */
  pollers?: Pollers;
  /** Counts requests, calls, runs (createDeps: Prometheus when METRICS_TOKEN is set); scraped at GET /metrics. */
  metrics?: Metrics & Partial<Scrape>;
  /** The last failed approval runs, for GET /api/status (approvals on). */
  runFailures?: RecentRunFailures;
  /** Whether Lark gives a tenant access token: a /readyz check (Lark configured). */
  tenantToken?: TenantTokenCheck;
}

/** Builds the Koa app from its parts. It does not listen: main.ts (or a test) does. */
/** The Koa app, with the list of its routes and their guards (tests enumerate it). */
export type BridgeApp = Koa & { routes: RouteListing[] };

export function createApp(deps: AppDeps): BridgeApp {
  const { config, logger, store } = deps;
  const app = new Koa() as BridgeApp;
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

  const bearer = bearerToken(config.auth);
  const routes = appRoutes(deps, taskSync, schema, bearer);
  const router = routerFor(routes, config.bodyLimitBytes);
  app.routes = listRoutes(routes);

  app.use(requestIds(logger));
  if (deps.metrics) app.use(httpMetrics(deps.metrics)); // outside renderErrors: it sees the final status
  app.use(renderErrors(logger, deps.reportError ?? (() => undefined)));
  app.use(router.routes()).use(methodNotAllowed(router));
  return app;
}

/**
 * Every route the service answers, each with the guard that authenticates it. Nothing outside
 * this list is served: there is no path-prefix rule to get around.
 */
export function appRoutes(
  deps: AppDeps,
  taskSync: ReturnType<typeof createTaskSync>,
  schema: ReturnType<typeof taskSyncRequestSchema>,
  bearer: ReturnType<typeof bearerToken>,
): Route[] {
  const { config } = deps;
  const jobs = deps.store.collection<Job>('jobs');
  const readiness = [storeCheck(deps.store), flowsCheck(deps.flows), ...(deps.tenantToken ? [deps.tenantToken.readiness()] : []), ...(deps.botIdentity ? [deps.botIdentity.readiness()] : [])];
  const routes: Route[] = [
    ...healthRoutes(readiness),
    ...statusRoutes({ worker: deps.worker, jobs, runs: deps.store.collection<Run>('runs'), pollers: deps.pollers, failures: deps.runFailures, clock: deps.clock, startedAt: deps.clock.now() }, bearer),
    ...metricsRoutes(deps.metrics ?? {}, metricsToken(config.metricsToken)),
    ...taskSyncRoutes({ taskSync, schema, jobs, worker: deps.worker, connectTimeoutMs: config.taskSync.connectTimeoutMs, bearer }),
    ...summaryRoutes({ delivery: summaryDelivery(deps), chats: config.chats, bearer }),
    ...externalOptionsRoutes(deps.flows, deps.metrics ? observedUpstream(deps.upstream, deps.metrics, 'options') : deps.upstream),
    ...pollerRoutes(deps.pollers, bearer),
  ];
  const engine = deps.engine;
  if (engine) {
    const intake = intakeOptions(config, deps);
    const dispatcher = deps.dispatcher ?? createEventDispatcher(intake);
    routes.push(...larkIntakeRoutes(intake, dispatcher), ...businessCallbackRoutes(engine, deps.flows, deps.clock));
  }
  return routes;
}

/** Sends POST /api/endpoint's posts, remembering per Idempotency-Key what each chat got. */
function summaryDelivery(deps: AppDeps) {
  const { messenger, store, clock, logger } = deps;
  return messenger ? createSummaryDelivery({ messenger, deliveries: store.keys<Delivery>('summary-deliveries'), clock, logger }) : undefined;
}

/** How Lark events reach the engine: shared by the HTTP routes and the long connection. */
export function intakeOptions(config: Config, deps: Pick<AppDeps, 'store' | 'clock' | 'logger' | 'engine' | 'chatReplies' | 'metrics'>): IntakeOptions {
  const engine = deps.engine!;
  const replies = deps.chatReplies;
  return {
    encryptKey: config.lark.encryptKey,
    verificationToken: config.lark.verificationToken,
    seenEvents: deps.store.keys<SeenMark>('lark-events'),
    clock: deps.clock,
    logger: deps.logger,
    metrics: deps.metrics,
    handlers: {
      approvalTask: (ev) => engine.acceptTaskEvent(ev),
      cardAction: async (action) => {
        if (action.value.action !== 'retry') return { ok: false, message: 'Unknown action.' };
        const stage = action.value.stage === 'check' || action.value.stage === 'execute' ? action.value.stage : undefined;
        if (!stage) return { ok: false, message: 'Unknown stage.' };
        return engine.retry(String(action.value.runId ?? ''), stage, action.operatorOpenId);
      },
      ...(replies ? { message: (msg) => replies.accept(msg) } : {}),
    },
  };
}
