import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import type { AppDeps } from './app.js';
import type { Job } from './jobs/job.js';
import { createUpstreamClient } from './upstream/client.js';
import { TaskSyncWorker } from './jobs/worker.js';
import { ApprovalEngine } from './flows/approval-engine.js';
import { FlowRegistry } from './flows/flow-registry.js';
import type { Run } from './flows/run.js';
import { createApprovalApi } from './lark/approval.js';
import { createLarkClient } from './lark/client.js';
import { createMessenger } from './lark/messages.js';
import { createLarkCall } from './lark/lark-call.js';
import { LarkRateLimiter } from './lark/rate-limiter.js';
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
  const client = appId && appSecret ? createLarkClient({ appId, appSecret, domain, timeoutMs, logger }) : undefined;
  const messenger = client ? createMessenger(client, createLarkCall({ limiter: new LarkRateLimiter(), clock, logger })) : undefined;
  // Approval calls have their own budget (50/s), apart from message sends.
  const approvals = client ? createApprovalApi(client, createLarkCall({ limiter: new LarkRateLimiter(50, 50), clock, logger })) : undefined;

  const flows = new FlowRegistry(config.flowsDir, process.env, logger, (flow) => {
    if (flow.kind !== 'approval' || !approvals) return;
    approvals.subscribe(flow.approvalCode).then(
      (r) => logger.info({ flow: flow.id, approvalCode: flow.approvalCode, result: r }, 'approval events subscribed'),
      (err: unknown) => logger.error({ err, flow: flow.id }, 'could not subscribe to approval events'),
    );
  });
  await flows.loadAll();

  const engine =
    approvals && messenger
      ? new ApprovalEngine({
          runs: store.collection<Run>('runs'),
          flows,
          approvals,
          messenger,
          upstream,
          clock,
          logger,
          assistantUserId: config.lark.assistantUserId,
          publicBaseUrl: config.publicBaseUrl,
          templatesDir: config.templatesDir,
          approvalLink: (code) => config.lark.approvalLink.replace('{instanceCode}', encodeURIComponent(code)),
        })
      : undefined;
  return { config, logger, clock, store, worker, messenger, upstream, flows, engine };
}
