import { mkdir, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createDeps } from '../src/deps.js';
import type { Job } from '../src/jobs/job.js';
import { TaskSyncWorker } from '../src/jobs/worker.js';
import { createLogger, type Logger } from '../src/log.js';
import { SecretScrubber } from '../src/secret-scrubber.js';
import { startSentry, type ErrorReporting } from '../src/sentry.js';
import { openJournalStore } from '../src/store/open-store.js';
import type { RecordCollection, Store, StoredRecord } from '../src/store/store.js';
import type { UpstreamClient } from '../src/upstream/client.js';
import { startFakeGuance, type FakeGuance } from './fake-guance/fake-guance.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { startFakeSentry, type FakeSentry } from './helpers/fake-sentry.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, waitFor } from './helpers/test-app.js';

const API_TOKEN = 'sentry-test-api-token-9d2f';
const APP_SECRET = 'sentry-test-app-secret-77ab';
const HOOK_KEY = 'sentry-test-hook-key-0c3e';
const GUANCE_KEY = 'sentry-test-guance-key-44f1';

describe('errors to Sentry (the real service, SENTRY_DSN at a loopback endpoint)', () => {
  let dir: string;
  let sentry: FakeSentry;
  let lark: LarkEmulator;
  let guance: FakeGuance;
  let service: ServiceProcess;

  beforeAll(async () => {
    dir = await tempDir('lark-bridge-sentry-');
    sentry = await startFakeSentry();
    lark = await startLarkEmulator({ apps: { cli_a1b2c3d4e5f6beef: APP_SECRET }, customBots: { [HOOK_KEY]: { chatId: 'oc_alerts' } } });
    guance = await startFakeGuance(GUANCE_KEY);
    await mkdir(join(dir, 'flows'));
    await writeFile(
      join(dir, 'flows/alerts.json'),
      JSON.stringify({
        kind: 'poller',
        id: 'alerts',
        name: 'Alerts',
        schedule: '0 0 1 1 *',
        source: { type: 'guance', baseUrl: guance.url, apiKey: '${env:GUANCE_API_KEY}', channel: 'on-call' },
        notify: { webhook: '${env:ALERTS_WEBHOOK}' },
      }),
    );
    service = await spawnService({
      DATA_DIR: join(dir, 'data'),
      FLOWS_DIR: join(dir, 'flows'),
      API_TOKENS: API_TOKEN,
      LARK_APP_ID: 'cli_a1b2c3d4e5f6beef',
      LARK_APP_SECRET: APP_SECRET,
      LARK_DOMAIN: lark.url,
      GUANCE_API_KEY: GUANCE_KEY,
      ALERTS_WEBHOOK: `${lark.url}/open-apis/bot/v2/hook/${HOOK_KEY}`,
      SENTRY_DSN: sentry.dsn(),
      SENTRY_ENVIRONMENT: 'ci',
    });
  });

  afterAll(async () => {
    await service?.kill('SIGTERM');
    await Promise.all([sentry?.close(), lark?.close(), guance?.close()]);
    if (dir) await removeDir(dir);
  });

  it('starts with Sentry on and nothing but JSON lines in its output', () => {
    const lines = service.output().trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(service.output()).toContain('"msg":"Sentry: on"');
  });

  it('sends a poller failure with the poller id as a tag, scrubbed, with environment and release', async () => {
    guance.addIssue({ name: 'disk full on db-1' });
    // The robot refuses every post of this run: the run ends with an error line, which Sentry gets.
    lark.failNext(`POST /open-apis/bot/v2/hook/${HOOK_KEY}`, { body: { code: 19001, msg: 'param invalid: incoming webhook access token invalid' } }, 10);
    const run = await api(service.url, '/api/pollers/alerts/run', { method: 'POST', token: API_TOKEN, headers: { 'x-request-id': 'sentry-poll-1' } });
    expect(run.status).toBe(200);
    const event = await waitFor(() => sentry.events().find((e) => e.tags?.poller === 'alerts'), 15_000);
    expect(event).toMatchObject({ level: 'error', environment: 'ci', release: 'lark-bridge@0.1.0', tags: { poller: 'alerts', reqId: 'sentry-poll-1', path: '/api/pollers/alerts/run' } });
    expect(JSON.stringify(event)).toMatch(/not posted/);
    const raw = sentry.envelopes.map((e) => e.raw).join('\n');
    for (const secret of [API_TOKEN, APP_SECRET, HOOK_KEY, GUANCE_KEY]) expect(raw).not.toContain(secret);
  });
});

describe('errors to Sentry from requests and jobs (the real app, in process)', () => {
  let dir: string;
  let sentry: FakeSentry;
  let reporting: ErrorReporting;
  let logger: Logger;
  const logged: string[] = [];

  beforeAll(async () => {
    dir = await tempDir('lark-bridge-sentry-app-');
    sentry = await startFakeSentry();
    const scrubber = new SecretScrubber().addFromEnv({ API_TOKENS: API_TOKEN, LARK_APP_SECRET: APP_SECRET });
    reporting = await startSentry({ dsn: sentry.dsn(), environment: 'test', scrubber });
    logger = createLogger('info', { write: (l: string) => (logged.push(l), true) } as unknown as NodeJS.WritableStream, { scrubber, onError: (e) => reporting.report(e) });
  });

  afterAll(async () => {
    await sentry?.close();
    if (dir) await removeDir(dir);
  });

  it('reports an unhandled error in a request with its request id, method, path and client, secrets scrubbed', async () => {
    await mkdir(join(dir, 'flows'));
    const config = loadConfig({ DATA_DIR: join(dir, 'data'), FLOWS_DIR: join(dir, 'flows'), API_TOKENS: API_TOKEN, LOG_LEVEL: 'info' });
    const deps = await createDeps(config, logger);
    // A store whose job lookup has a bug: the status route answers 500.
    const buggyStore: Store = {
      ...deps.store,
      collection: <T extends StoredRecord>(name: string): RecordCollection<T> => {
        const real = deps.store.collection<T>(name);
        if (name !== 'jobs') return real;
        return { ...real, get: async () => Promise.reject(new TypeError(`cannot read jobs (token ${API_TOKEN} in the message)`)) };
      },
    };
    const app = createApp({ ...deps, store: buggyStore });
    const server: Server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const res = await api(url, '/api/task-sync/status/job-123', { token: API_TOKEN, headers: { 'x-request-id': 'req-sentry-1' } });
      expect(res.status).toBe(500);
      await reporting.flush(5_000);
      const event = await waitFor(() => sentry.events().find((e) => e.tags?.reqId === 'req-sentry-1'), 10_000);
      expect(event.exception.values[0]).toMatchObject({ type: 'TypeError', value: 'cannot read jobs (token [redacted] in the message)' });
      expect(event.tags).toMatchObject({ method: 'GET', path: '/api/task-sync/status/job-123', client: expect.stringMatching(/^token:[0-9a-f]{12}$/) });
      expect(JSON.stringify(event)).not.toContain(API_TOKEN);
      expect(logged.join('')).not.toContain(API_TOKEN);
    } finally {
      server.close();
      await deps.worker.stop(0);
      await deps.store.close();
      await deps.upstream.close();
    }
  });

  it('reports an unhandled error in a task-sync job with the job id', async () => {
    const store = await openJournalStore({ dir: join(dir, 'worker-data'), clock: { now: () => Date.now(), sleep: async () => undefined } });
    // An upstream client with a bug: the worker's safety net logs it, the log reports it.
    const broken: UpstreamClient = {
      postJson: async () => Promise.reject(new RangeError('upstream client bug')),
      get: async () => Promise.reject(new RangeError('upstream client bug')),
      close: async () => undefined,
    };
    const jobs = store.collection<Job>('jobs');
    const worker = new TaskSyncWorker({
      jobs,
      upstream: broken,
      clock: { now: () => Date.now(), sleep: async () => undefined },
      logger,
      concurrency: { concurrency: 1, perClient: 1, perHost: 1 },
      bounds: { maxRecords: 10, maxBytes: 100_000, maxRecordsPerClient: 10, maxBytesPerClient: 100_000 },
      retries: 0,
      retryBaseMs: 1,
    });
    const now = new Date().toISOString();
    const job: Job = { id: 'job-sentry-1', mode: 'batch', webhookUrl: 'http://127.0.0.1:9/hooks/x', records: ['r1'], timeoutSec: 5, status: 'queued', results: [null], createdAt: now, updatedAt: now, completedAt: null };
    await jobs.put(job);
    worker.submit(job);
    try {
      await waitFor(() => logged.some((l) => l.includes('task-sync record failed unexpectedly')));
      await reporting.flush(5_000);
      const event = await waitFor(() => sentry.events().find((e) => e.tags?.jobId === 'job-sentry-1'), 10_000);
      expect(event.exception.values[0]).toMatchObject({ type: 'RangeError', value: 'upstream client bug' });
      expect(event.extra).toMatchObject({ logMessage: 'task-sync record failed unexpectedly' });
    } finally {
      await worker.stop(0);
      await store.close();
    }
  });

  it('tags runs, flows and events by the ids the log line carries', async () => {
    logger.error({ err: new Error('approval step failed'), runId: 'INSTANCE-1', flow: 'admin-permission', eventId: 'ev-1' }, 'approval run step failed');
    await reporting.flush(5_000);
    const event = await waitFor(() => sentry.events().find((e) => e.tags?.runId === 'INSTANCE-1'), 10_000);
    expect(event.tags).toMatchObject({ runId: 'INSTANCE-1', flow: 'admin-permission', eventId: 'ev-1' });
  });
});
