import { systemClock, type Clock } from './clock.js';
import { StartRefused, type Config } from './config.js';
import type { AppDeps } from './app.js';
import { AcceptFirst, YieldingSlots } from './accept-first.js';
import type { Job } from './jobs/job.js';
import { createUpstreamClient } from './upstream/client.js';
import { TaskSyncWorker } from './jobs/worker.js';
import { ApprovalEngine } from './flows/approval-engine.js';
import { FlowRegistry } from './flows/flow-registry.js';
import type { Run } from './flows/run.js';
import type { RunWakeup } from './flows/run-wakeups.js';
import { approvalLinkFor } from './lark/approval-link.js';
import { BotIdentity } from './lark/bot-info.js';
import { createLarkApis } from './lark/lark-apis.js';
import { RunInbox, type CallbackResult, type InboxItem } from './flows/run-inbox.js';
import type { Logger } from './log.js';
import type { FileOps } from './store/file-ops.js';
import { openStore } from './store/open-store.js';
import { chatRepliesFor, replyRemindersFor } from './pollers/replies/replies-from-store.js';
import type { ReplyTargets } from './pollers/replies/reply-target.js';
import { POSTED_CARDS } from './pollers/feed.js';
import { CARD_RETENTION_MS, Pollers } from './pollers/pollers.js';
import { noMetrics } from './metrics/metrics.js';
import { observedUpstream } from './metrics/observed-upstream.js';
import { createPrometheusMetrics } from './metrics/prometheus.js';
import { serviceSources } from './metrics/service-sources.js';
import { RecentRunFailures, type RunFailure } from './flows/recent-failures.js';

/** Approval run turns at once while a burst of requests keeps the event loop busy (README, "Accept path first"). */
const RUN_BURST_TURNS = 2;
/**
 * Approval run turns at once at any time. A turn mostly waits for Lark, whose limits (instance
 * get: 1,000 a minute) hold the whole pipeline to a few runs a second: a burst of 20,000 events
 * started 20,000 turns that each waited in the rate limiter with ~13 KB of suspended calls. Past
 * the ceiling a run waits in the slots' queue as its id, ~260 bytes (its news is on disk already).
 */
const RUN_MAX_TURNS = 1000;

const DAY = 86_400_000;

export interface DepsOptions {
  /** Where @bot replies go: the poller flows and their sources (tests pass fakes). */
  replyTargets?: ReplyTargets;
  /** The disk under the store (tests inject a failing one). */
  fileOps?: FileOps;
}

/** The one place where real implementations are chosen; tests build AppDeps with fakes instead. */
export async function createDeps(config: Config, logger: Logger, clock: Clock = systemClock, options: DepsOptions = {}): Promise<AppDeps & { acceptFirst: AcceptFirst }> {
  // Counted only when they can be read (METRICS_TOKEN set): otherwise every hook is a no-op.
  const prometheus = config.metricsToken ? createPrometheusMetrics() : undefined;
  const metrics = prometheus ?? noMetrics;
  // PostgreSQL when DATABASE_URL is set, else the embedded journal store on DATA_DIR.
  const store = await openStore({
    database: config.database,
    leaseMs: config.database?.leaseMs,
    onCommit: prometheus && ((seconds, bytes) => prometheus.storeCommit(seconds, bytes)),
    dir: config.dataDir,
    clock,
    fileOps: options.fileOps,
    log: { warn: (m) => logger.warn(m), info: (m) => logger.info(m) },
    retention: {
      jobs: { maxAgeMs: config.retention.jobDays * DAY, maxCount: config.retention.jobMax },
      // Posted cards stay findable (replies in their thread) as long as their message id is mapped.
      [POSTED_CARDS]: { maxAgeMs: CARD_RETENTION_MS, maxCount: 10_000_000 },
    },
    compactAtBytes: config.storeCompactBytes,
  });
  const upstream = createUpstreamClient({
    connectTimeoutMs: config.taskSync.connectTimeoutMs,
    verifySsl: config.taskSync.verifySsl,
    caBundlePath: config.taskSync.caBundle,
  });
  const upstreamFor = (purpose: Parameters<typeof observedUpstream>[2]) => (prometheus ? observedUpstream(upstream, prometheus, purpose) : upstream);
  // Under a burst of requests the worker yields the event loop to accepting (src/accept-first.ts).
  const acceptFirst = new AcceptFirst();
  const worker = new TaskSyncWorker({
    jobs: store.collection<Job>('jobs'),
    upstream: upstreamFor('task_sync'),
    clock,
    logger,
    concurrency: {
      concurrency: config.taskSync.concurrency,
      perClient: config.taskSync.concurrencyPerClient,
      perHost: config.taskSync.concurrencyPerHost,
    },
    bounds: {
      maxRecords: config.taskSync.maxQueuedRecords,
      maxBytes: config.taskSync.maxQueuedBytes,
      maxRecordsPerClient: config.taskSync.maxQueuedRecordsPerClient,
      maxBytesPerClient: config.taskSync.maxQueuedBytesPerClient,
    },
    retries: config.taskSync.retries,
    retryBaseMs: config.taskSync.retryBaseMs,
    leaseMs: config.database?.leaseMs,
    acceptFirst: { gate: acceptFirst, burstConcurrency: config.taskSync.burstConcurrency },
  });
  const { appId, appSecret, domain, timeoutMs } = config.lark;
  const larkApis = appId && appSecret ? createLarkApis({ appId, appSecret, domain, timeoutMs, logger, clock, metrics }) : undefined;
  const messenger = larkApis?.messenger;
  const approvals = larkApis?.approvals;

  const flows = new FlowRegistry(config.flowsDir, process.env, logger, (flow) => {
    if (flow.kind !== 'approval' || !approvals) return;
    approvals.subscribe(flow.approvalCode).then(
      (r) => logger.info({ flow: flow.id, approvalCode: flow.approvalCode, result: r }, 'approval events subscribed'),
      (err: unknown) => logger.error({ err, flow: flow.id }, 'could not subscribe to approval events'),
    );
  }, config.lark.assistantUserId);
  await flows.loadAll();
  const needAssistant = flows.refusedFor('LARK_ASSISTANT_USER_ID');
  if (needAssistant.length) {
    throw new StartRefused(
      `LARK_ASSISTANT_USER_ID is not set, but ${needAssistant.join(', ')} declare approval flows: set it to the user id of the account assigned to check_node/execute_node (without it any user's PENDING task there would be acted on)`,
    );
  }

  const runFailures = approvals && messenger ? new RecentRunFailures(store.keys<RunFailure[]>('run-failures'), clock, logger) : undefined;
  const engine =
    approvals && messenger
      ? new ApprovalEngine({
          runs: store.collection<Run>('runs'),
          locks: store,
          wakeups: store.collection<RunWakeup>('run-wakeups'),
          // A dead replica's runs are looked for at least every third of a lease (and every 5 s at most).
          sweepEveryMs: Math.min(5_000, Math.floor((config.database?.leaseMs ?? 30_000) / 3)),
          turnSlots: new YieldingSlots(acceptFirst, RUN_BURST_TURNS, RUN_MAX_TURNS),
          inbox: new RunInbox(store.collection<InboxItem>('run-inbox'), store.keys<CallbackResult>('run-callbacks'), clock),
          flows,
          approvals,
          messenger,
          upstream: upstreamFor('business'),
          clock,
          logger,
          runEnded: (run) => {
            metrics.approvalRunEnded(run.flowId, run.status);
            runFailures?.note(run);
          },
          assistantUserId: config.lark.assistantUserId,
          publicBaseUrl: config.publicBaseUrl,
          templatesDir: config.templatesDir,
          approvalLink: approvalLinkFor(config.lark.domain, config.lark.approvalLink),
        })
      : undefined;

  // The new-reply reminder: the poller run posts a replies feed's new comments into card threads with it.
  const postNewReplies = larkApis ? replyRemindersFor(store, { messenger: larkApis.messenger, clock, logger }) : undefined;
  // Built here, started by main (and test harnesses) once the app listens.
  const pollers = new Pollers({ flows, store, upstream: upstreamFor('poller'), messenger, clock, logger, templatesDir: config.templatesDir, metrics, postNewReplies });

  // @bot replies. Targets: the poller flows in force and their sources.
  const botIdentity = larkApis ? new BotIdentity(larkApis.botInfo, clock, logger) : undefined;
  const chatReplies =
    larkApis && botIdentity
      ? chatRepliesFor(store, { targets: options.replyTargets ?? replyTargetsOf(flows, pollers), bot: botIdentity, userNames: larkApis.userNames, messenger: larkApis.messenger, clock, logger })
      : undefined;
  prometheus?.observe(serviceSources({ worker, store, flows }));
  const tenantToken = larkApis?.tenantToken;
  return { config, logger, clock, store, worker, acceptFirst, messenger, upstream, flows, engine, pollers, botIdentity, chatReplies, postNewReplies, metrics: prometheus, runFailures, tenantToken };
}

/** What @bot replies need to know of the pollers: which are in force, their sources, their `replies` setting. */
function replyTargetsOf(flows: FlowRegistry, pollers: Pollers): ReplyTargets {
  return {
    pollerIds: () => flows.pollers().map((f) => f.id),
    sourceFor: (id) => pollers.sourceFor(id),
    repliesEnabled: (id) => flows.pollers().find((f) => f.id === id)?.replies === true,
  };
}
