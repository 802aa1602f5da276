import { existsSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import { config as loadDotenv } from 'dotenv';
import { createApp } from './app.js';
import { describeFeatures, describeFlows } from './banner.js';
import { checkEnv, StartRefused, type Config } from './config.js';
import { createDeps } from './deps.js';
import { createServiceLogger } from './log.js';
import { createEventDispatcher, startLongConnection } from './lark/event-intake.js';
import { intakeOptions } from './app.js';
import { SecretScrubber } from './secret-scrubber.js';
import { startSentry } from './sentry.js';
import { checkStartEnvironment, listenError } from './start-checks.js';
import { StoreRefused } from './store/store-errors.js';

const STOP_GRACE_MS = 10_000;
const PRUNE_EVERY_MS = 60 * 60 * 1000;

/** Exit code of a start refused for a reason the operator can fix (configuration, data dir, port). */
const EXIT_REFUSED = 2;

/** Until the app is ready (jobs and runs resumed): a short 503 that says to come back. */
const answerStarting: RequestListener = (_req, res) => {
  res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
  res.end('{"error":{"code":"unavailable","message":"lark-bridge is starting"}}');
};

/** One line per problem on stderr, no stack trace, exit 2. */
function refuse(problems: readonly string[]): never {
  for (const p of problems) process.stderr.write(`lark-bridge: cannot start, ${p}\n`);
  process.exit(EXIT_REFUSED);
}

/** Every bad variable at once: the schema, the checks between variables, and what they name on disk and on the network. */
async function readConfig(): Promise<Config> {
  const checked = checkEnv(process.env);
  const problems = [...checked.problems, ...(await checkStartEnvironment(checked.values))];
  if (problems.length || !checked.config) refuse(problems);
  return checked.config;
}

async function main(): Promise<void> {
  loadDotenv({ quiet: true }); // .env fills only what the environment does not already set
  const config = await readConfig();
  const scrubber = new SecretScrubber().addFromEnv(process.env);
  // Sentry costs ~80 MB of RSS once loaded: only load it when it is configured.
  const errors = config.sentryDsn ? await startSentry({ dsn: config.sentryDsn, environment: config.sentryEnvironment, scrubber }) : undefined;
  // Every error-level line (requests, jobs, runs, pollers) reaches Sentry with its fields as context.
  const logger = await createServiceLogger(config.logLevel, config.logFormat, { scrubber, onError: errors && ((e) => errors.report(e)) });

  let deps: Awaited<ReturnType<typeof createDeps>>;
  try {
    deps = await createDeps(config, logger);
  } catch (err) {
    if (err instanceof StartRefused) refuse([err.message]);
    throw err;
  }
  // Listen before anything resumes: a taken port is said in one line while nothing has started
  // (the data dir is locked by then, so a second instance hears about the lock, not the port).
  let handle: RequestListener = answerStarting;
  const server: Server = createServer((req, res) => handle(req, res));
  server.listen(config.port, config.host);
  const listenFailed = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const failed = (err: NodeJS.ErrnoException) => resolve(err);
    server.once('error', failed);
    server.once('listening', () => {
      server.off('error', failed);
      resolve(undefined);
    });
  });
  if (listenFailed) {
    await deps.store.close();
    await deps.upstream.close();
    refuse([listenError(config.host, config.port, listenFailed)]);
  }

  const { appId, appSecret, domain, eventMode } = config.lark;
  const dispatcher = deps.engine ? createEventDispatcher(intakeOptions(config, deps)) : undefined;
  // No reportError: the error middleware logs unhandled errors, and the log reports them.
  const app = createApp({ ...deps, dispatcher });
  const resumed = await deps.worker.resume();
  const resumedRuns = (await deps.engine?.resume()) ?? 0;
  void deps.botIdentity?.learn();
  const resumedReplies = (await deps.chatReplies?.resume()) ?? 0;
  deps.flows.watch();
  deps.pollers?.start();
  const longConnection = dispatcher && eventMode === 'ws' && appId && appSecret ? startLongConnection(appId, appSecret, domain, dispatcher, logger) : undefined;
  await deps.store.prune(Date.now());
  const callback = app.callback();
  handle = (req, res) => {
    deps.acceptFirst.requestSeen();
    return callback(req, res);
  };
  deps.acceptFirst.start();

  const pruner = setInterval(() => {
    deps.store.prune(Date.now()).catch((err: unknown) => logger.error({ err }, 'prune failed'));
  }, PRUNE_EVERY_MS);
  pruner.unref();

  const address = server.address();
  const where = typeof address === 'object' && address ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : String(address);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: no new connections; finishing in-flight work');
    clearInterval(pruner);
    // Before the gate lets go of what it held back: turns queued behind it must not start now.
    deps.engine?.beginStop();
    deps.acceptFirst.stop();
    const hardStop = setTimeout(() => {
      logger.error('stop took too long; exiting');
      logger.flush();
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
    await errors?.flush(2000);
    logger.info('stopped');
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Announced once a stop signal is handled: whoever waits for this line may send one at once.
  logger.info({ store: config.database ? 'postgresql' : config.dataDir, resumedJobs: resumed, resumedRuns, resumedReplies, flows: deps.flows.all().length }, `lark-bridge listening on ${where}`);
  for (const line of describeFeatures(config)) (line.includes('WARNING') ? logger.warn(line) : logger.info(line));
  const flowsLine = describeFlows(deps.flows.all().length, deps.flows.notConfigured(), existsSync(config.flowsDir) ? undefined : config.flowsDir);
  (flowsLine.includes('WARNING') ? logger.warn(flowsLine) : logger.info(flowsLine));
}

main().catch((err: unknown) => {
  // The store refuses with one line that names the file and what to do: no stack for the operator.
  if (err instanceof StoreRefused) refuse([err.message]);
  process.stderr.write(`lark-bridge: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
