import { once } from 'node:events';
import type { Server } from 'node:http';
import { config as loadDotenv } from 'dotenv';
import { createApp } from './app.js';
import { ConfigError, describeFeatures, loadConfig, StartRefused, type Config } from './config.js';
import { createDeps } from './deps.js';
import { createLogger } from './log.js';
import { createEventDispatcher, startLongConnection } from './lark/event-intake.js';
import { intakeOptions } from './app.js';
import { StoreRefused } from './store/store-errors.js';

const STOP_GRACE_MS = 10_000;
const PRUNE_EVERY_MS = 60 * 60 * 1000;

async function main(): Promise<void> {
  loadDotenv({ quiet: true }); // .env fills only what the environment does not already set
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`lark-bridge: cannot start, ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  // Sentry costs ~80 MB of RSS once loaded: only load it when it is configured.
  const sentry = config.sentryDsn ? await import('@sentry/node') : undefined;
  sentry?.init({ dsn: config.sentryDsn, sendDefaultPii: false });

  let deps: Awaited<ReturnType<typeof createDeps>>;
  try {
    deps = await createDeps(config, logger);
  } catch (err) {
    if (err instanceof StartRefused) {
      process.stderr.write(`lark-bridge: cannot start, ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { appId, appSecret, domain, eventMode } = config.lark;
  const dispatcher = deps.engine ? createEventDispatcher(intakeOptions(config, deps)) : undefined;
  const app = createApp({ ...deps, dispatcher, reportError: (err) => sentry?.captureException(err) });
  const resumed = await deps.worker.resume();
  const resumedRuns = (await deps.engine?.resume()) ?? 0;
  void deps.botIdentity?.learn();
  const resumedReplies = (await deps.chatReplies?.resume()) ?? 0;
  deps.flows.watch();
  deps.pollers?.start();
  const longConnection = dispatcher && eventMode === 'ws' && appId && appSecret ? startLongConnection(appId, appSecret, domain, dispatcher) : undefined;
  await deps.store.prune(Date.now());

  const server: Server = app.listen(config.port, config.host);
  await once(server, 'listening');
  const address = server.address();
  const where = typeof address === 'object' && address ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : String(address);

  const pruner = setInterval(() => {
    deps.store.prune(Date.now()).catch((err: unknown) => logger.error({ err }, 'prune failed'));
  }, PRUNE_EVERY_MS);
  pruner.unref();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: no new connections; finishing in-flight work');
    clearInterval(pruner);
    const hardStop = setTimeout(() => {
      logger.error('stop took too long; exiting');
      process.exit(1);
    }, config.taskSync.stopGraceMs + STOP_GRACE_MS);
    hardStop.unref();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // server.close() drops the connections idle now; a keep-alive connection whose answer goes out
    // during the stop (a single record answered 202 by worker.stop) would hold it for 5 s more.
    const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
    server.closeIdleConnections();
    longConnection?.close();
    deps.flows.close();
    // A poll in progress finishes the card in hand; its cursor and marks are saved before the store closes.
    await deps.pollers?.stop(config.taskSync.stopGraceMs);
    await deps.worker.stop(config.taskSync.stopGraceMs);
    await deps.engine?.stop();
    await deps.chatReplies?.stop();
    await closed;
    clearInterval(idleSweep);
    await deps.store.close();
    await deps.upstream.close();
    await sentry?.flush(2000).catch(() => undefined);
    logger.info('stopped');
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Announced once a stop signal is handled: whoever waits for this line may send one at once.
  logger.info({ dataDir: config.dataDir, resumedJobs: resumed, resumedRuns, resumedReplies, flows: deps.flows.all().length }, `lark-bridge listening on ${where}`);
  for (const line of describeFeatures(config)) (line.includes('WARNING') ? logger.warn(line) : logger.info(line));
}

main().catch((err: unknown) => {
  // The store refuses with one line that names the file and what to do: no stack for the operator.
  if (err instanceof StoreRefused) {
    process.stderr.write(`lark-bridge: cannot start, ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`lark-bridge: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
