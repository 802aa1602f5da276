import { systemClock, type Clock } from './clock.js';
import { StartRefused, type Config } from './config.js';
import type { AppDeps } from './app.js';
import type { Job } from './jobs/job.js';
import { createUpstreamClient } from './upstream/client.js';
import { TaskSyncWorker } from './jobs/worker.js';
import { ApprovalEngine } from './flows/approval-engine.js';
import { FlowRegistry } from './flows/flow-registry.js';
import type { Run } from './flows/run.js';
import { approvalLinkFor } from './lark/approval-link.js';
import { createLarkApis } from './lark/lark-apis.js';
import { RunInbox, type CallbackResult, type InboxItem } from './flows/run-inbox.js';
import type { Logger } from './log.js';
import type { FileOps } from './store/file-ops.js';
import { openJournalStore } from './store/open-store.js';

const DAY = 86_400_000;

/** The one place where real implementations are chosen; tests build AppDeps with fakes instead. */
export async function createDeps(config: Config, logger: Logger, clock: Clock = systemClock, io: { fileOps?: FileOps } = {}): Promise<AppDeps> {
  const store = await openJournalStore({
    dir: config.dataDir,
    clock,
    fileOps: io.fileOps,
    log: { warn: (m) => logger.warn(m), info: (m) => logger.info(m) },
    retention: { jobs: { maxAgeMs: config.retention.jobDays * DAY, maxCount: config.retention.jobMax } },
    compactAtBytes: config.storeCompactBytes,
  });
  const upstream = createUpstreamClient({
    connectTimeoutMs: config.taskSync.connectTimeoutMs,
    verifySsl: config.taskSync.verifySsl,
    caBundlePath: config.taskSync.caBundle,
  });
  const worker = new TaskSyncWorker({
    jobs: store.collection<Job>('jobs'),
    upstream,
    clock,
    logger,
    concurrency: config.taskSync.concurrency,
    retries: config.taskSync.retries,
    retryBaseMs: config.taskSync.retryBaseMs,
  });
  const { appId, appSecret, domain, timeoutMs } = config.lark;
  const larkApis = appId && appSecret ? createLarkApis({ appId, appSecret, domain, timeoutMs, logger, clock }) : undefined;
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

  const engine =
    approvals && messenger
      ? new ApprovalEngine({
          runs: store.collection<Run>('runs'),
          inbox: new RunInbox(store.collection<InboxItem>('run-inbox'), store.keys<CallbackResult>('run-callbacks'), clock),
          flows,
          approvals,
          messenger,
          upstream,
          clock,
          logger,
          assistantUserId: config.lark.assistantUserId,
          publicBaseUrl: config.publicBaseUrl,
          templatesDir: config.templatesDir,
          approvalLink: approvalLinkFor(config.lark.domain, config.lark.approvalLink),
        })
      : undefined;
  return { config, logger, clock, store, worker, messenger, upstream, flows, engine };
}
