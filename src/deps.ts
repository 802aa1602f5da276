import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import type { AppDeps } from './app.js';
import type { Job } from './jobs/job.js';
import { createUpstreamClient, type UpstreamClient } from './jobs/upstream.js';
import { TaskSyncWorker } from './jobs/worker.js';
import { createLarkClient } from './lark/client.js';
import { createMessenger } from './lark/messages.js';
import { LarkRateLimiter } from './lark/rate-limiter.js';
import type { Logger } from './log.js';
import { openJsonFileStore } from './store/json-file-store.js';

const DAY = 86_400_000;

export interface RuntimeDeps extends AppDeps {
  upstream: UpstreamClient;
}

/** The one place where real implementations are chosen; tests build AppDeps with fakes instead. */
export async function createDeps(config: Config, logger: Logger, clock: Clock = systemClock): Promise<RuntimeDeps> {
  const store = await openJsonFileStore({
    dir: config.dataDir,
    clock,
    retention: { jobs: { maxAgeMs: config.retention.jobDays * DAY, maxCount: config.retention.jobMax } },
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
  const messenger =
    appId && appSecret
      ? createMessenger({
          client: createLarkClient({ appId, appSecret, domain, timeoutMs, logger }),
          limiter: new LarkRateLimiter(),
          clock,
          logger,
        })
      : undefined;
  return { config, logger, clock, store, worker, messenger, upstream };
}
