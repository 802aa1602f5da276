import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import type { Job } from '../src/jobs/job.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitFor, waitForJob, type TestApp } from './helpers/test-app.js';

let upstream: FakeUpstream;
const apps: TestApp[] = [];

afterEach(async () => {
  for (const app of apps.splice(0)) {
    await app.deps.worker.stop(0); // cut hung calls at once
    await app.stop();
    await removeDir(app.dataDir);
  }
  await upstream?.close();
});

/** Calls to /hooks/hung never answer; the others answer 200. */
async function start(env: Record<string, string>, dataDir?: string): Promise<TestApp> {
  const app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, ...env }, dataDir);
  apps.push(app);
  return app;
}

const records = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const liveJobs = (app: TestApp) => app.deps.store.collection<Job>('jobs').live();
const submit = (app: TestApp, token: string, recs: string[], path = 'hung', headers?: Record<string, string>) =>
  api(app.url, '/api/task-sync', { token, headers, body: { webhookUrl: `${upstream.url}/hooks/${path}`, records: recs, timeout: 60 } });

const bounded = {
  API_TOKENS: 'tok-a,tok-b,tok-c',
  TASK_SYNC_CONCURRENCY: '2',
  TASK_SYNC_MAX_RECORDS: '10',
  TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '10',
  TASK_SYNC_MAX_QUEUED_RECORDS: '15',
};

describe('task-sync queue bounds', () => {
  it("beyond a client's share: 429 with Retry-After and the bound to change; beyond the whole queue: 503; nothing created", async () => {
    upstream = await startFakeUpstream((call) => (call.path === '/hooks/hung' ? { hang: true } : { status: 200 }));
    const app = await start(bounded);
    expect((await submit(app, 'tok-a', records('a', 10))).status).toBe(202);

    const mine = await submit(app, 'tok-a', ['a-more']);
    expect(mine.status).toBe(429);
    expect(Number(mine.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(mine.json.error).toMatchObject({
      code: 'too_many_requests',
      message: expect.stringMatching(/this client's share of the task-sync queue is full: 10 records queued \+ 1 in this job > 10 \(TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT\)\. Nothing was created/),
      details: { bound: 'TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT', scope: 'client', unit: 'records', limit: 10, queued: 10, requested: 1 },
    });

    // Another client still has room in its own share, until the whole queue (15) is full.
    expect((await submit(app, 'tok-b', records('b', 5))).status).toBe(202);
    const all = await submit(app, 'tok-c', ['c-1']);
    expect(all.status).toBe(503);
    expect(Number(all.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(all.json.error).toMatchObject({
      code: 'unavailable',
      message: expect.stringMatching(/the task-sync queue is full: 15 records queued by all clients \+ 1 in this job > 15 \(TASK_SYNC_MAX_QUEUED_RECORDS\)/),
      details: { bound: 'TASK_SYNC_MAX_QUEUED_RECORDS', scope: 'all', limit: 15, queued: 15, requested: 1 },
    });

    expect(await liveJobs(app)).toHaveLength(2);
    expect(upstream.calls.map((c) => c.body.recordId)).not.toContain('a-more');
    expect(upstream.calls.map((c) => c.body.recordId)).not.toContain('c-1');
  });

  it('room comes back as records finish', async () => {
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    upstream = await startFakeUpstream(async () => {
      await gate;
      return { status: 200 };
    });
    const app = await start(bounded);
    const first = await submit(app, 'tok-a', records('a', 10), 'x');
    expect((await submit(app, 'tok-a', ['late'], 'x')).status).toBe(429);
    openGate();
    await waitForJob(app.url, first.json.jobId, 10_000, 'tok-a');
    expect(app.deps.worker.bounds.usage().records).toBe(0);
    expect((await submit(app, 'tok-a', ['late'], 'x')).status).toBe(202);
  });

  it('TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT bounds the bytes of ids and URLs; a job larger than a share alone is 413', async () => {
    upstream = await startFakeUpstream(() => ({ hang: true }));
    const app = await start({ TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT: '3000', TASK_SYNC_CONCURRENCY: '1' });
    const id = (c: string) => c.repeat(900); // 3 of them and the URL fit in 3000 bytes, a 4th does not
    expect((await submit(app, 'test-token-0123456789', [id('a'), id('b'), id('c')])).status).toBe(202);
    const over = await submit(app, 'test-token-0123456789', [id('d')]);
    expect(over.status).toBe(429);
    expect(over.json.error.details).toMatchObject({ bound: 'TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT', unit: 'bytes', limit: 3000 });
    expect(over.json.error.message).toMatch(/raise TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT/);

    const huge = await submit(app, 'test-token-0123456789', ['é'.repeat(1000), 'ü'.repeat(600)]); // 3,200 bytes of UTF-8: counted in bytes, not characters
    expect(huge.status).toBe(413);
    expect(huge.json.error.details).toMatchObject({ bound: 'TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT', limit: 3000 });
    expect(await liveJobs(app)).toHaveLength(1);
  });

  it('an Idempotency-Key replay is answered even when the queue is full (it takes no new room)', async () => {
    upstream = await startFakeUpstream(() => ({ hang: true }));
    const app = await start(bounded);
    const headers = { 'idempotency-key': 'full-replay' };
    const first = await submit(app, 'tok-a', records('a', 10), 'hung', headers);
    const again = await submit(app, 'tok-a', records('a', 10), 'hung', headers);
    expect(again.status).toBe(202);
    expect(again.json.jobId).toBe(first.json.jobId);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    // A new key is new work: refused.
    expect((await submit(app, 'tok-a', records('a', 10), 'hung', { 'idempotency-key': 'other' })).status).toBe(429);
  });

  it('a burst at the bound: exactly the room is accepted, the rest is refused, nothing overshoots', async () => {
    upstream = await startFakeUpstream(() => ({ hang: true }));
    const app = await start(bounded);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(app, ['tok-a', 'tok-b'][i % 2]!, [`burst-${i}`])));
    const statuses = answers.map((a) => a.status);
    // tok-a alone may hold 10; both together 15.
    expect(statuses.filter((s) => s === 202)).toHaveLength(15);
    expect(statuses.filter((s) => s !== 202).every((s) => s === 429 || s === 503)).toBe(true);
    expect(await liveJobs(app)).toHaveLength(15);
    expect(app.deps.worker.bounds.usage().records).toBe(15);
  });

  it('jobs resumed after a restart count against the bounds', async () => {
    upstream = await startFakeUpstream(() => ({ hang: true }));
    const app = await start(bounded);
    expect((await submit(app, 'tok-a', records('a', 10))).status).toBe(202);
    await app.crash();
    apps.splice(apps.indexOf(app), 1);
    const again = await start(bounded, app.dataDir);
    expect(again.deps.worker.bounds.usage('token:' + (await clientIdOf('tok-a'))).records).toBe(10);
    const refused = await submit(again, 'tok-a', ['more']);
    expect(refused.status).toBe(429);
    expect(refused.json.error.details.queued).toBe(10);
  });
});

describe('bounds configuration', () => {
  it('defaults, derived defaults and refused combinations, each naming the variable', () => {
    const d = loadConfig({}).taskSync;
    expect(d).toMatchObject({
      maxQueuedRecords: 50_000,
      maxQueuedRecordsPerClient: 10_000,
      maxQueuedBytes: 64 * 1024 * 1024,
      maxQueuedBytesPerClient: 16 * 1024 * 1024,
      concurrencyPerClient: 8,
      concurrencyPerHost: 8,
      stopGraceMs: 8_000,
    });
    expect(loadConfig({ API_TOKENS: 'a,b', TASK_SYNC_CONCURRENCY: '5' }).taskSync.concurrencyPerClient).toBe(3);
    expect(loadConfig({ API_TOKENS: 'a,b', API_AUTH: 'off' }).taskSync.concurrencyPerClient).toBe(8);
    expect(loadConfig({ TASK_SYNC_MAX_QUEUED_RECORDS: '2000' }).taskSync.maxQueuedRecordsPerClient).toBe(2000);

    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return '';
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
    };
    expect(problems({ TASK_SYNC_CONCURRENCY: '4', TASK_SYNC_CONCURRENCY_PER_CLIENT: '5' })).toMatch(/TASK_SYNC_CONCURRENCY_PER_CLIENT: 5 is more than TASK_SYNC_CONCURRENCY \(4\)/);
    expect(problems({ TASK_SYNC_BURST_CONCURRENCY: '9' })).toMatch(/TASK_SYNC_BURST_CONCURRENCY: 9 is more than TASK_SYNC_CONCURRENCY \(8\)/);
    expect(problems({ TASK_SYNC_BURST_CONCURRENCY: '0' })).toMatch(/TASK_SYNC_BURST_CONCURRENCY: expected a whole number/);
    expect(problems({ TASK_SYNC_CONCURRENCY_PER_HOST: '9' })).toMatch(/TASK_SYNC_CONCURRENCY_PER_HOST: 9 is more than TASK_SYNC_CONCURRENCY \(8\)/);
    expect(problems({ TASK_SYNC_MAX_QUEUED_RECORDS: '1000', TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '2000' })).toMatch(/TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: 2000 is more than TASK_SYNC_MAX_QUEUED_RECORDS \(1000\)/);
    expect(problems({ TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '100' })).toMatch(/TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: 100 is less than TASK_SYNC_MAX_RECORDS \(500\): a full batch could never be queued/);
    expect(problems({ TASK_SYNC_MAX_QUEUED_BYTES: '10' })).toMatch(/TASK_SYNC_MAX_QUEUED_BYTES: expected a whole number from 1024/);
    expect(problems({ TASK_SYNC_STOP_GRACE_MS: 'soon' })).toMatch(/TASK_SYNC_STOP_GRACE_MS: expected a whole number/);
  });
});

/** The client id the bearer guard derives from a token (a digest prefix, src/http/auth.ts). */
async function clientIdOf(token: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}
