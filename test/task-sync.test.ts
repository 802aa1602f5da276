import { rm, writeFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitForJob, type TestApp } from './helpers/test-app.js';

let upstream: FakeUpstream;
let app: TestApp;

async function start(env: Record<string, string> = {}) {
  app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, ...env });
}

beforeEach(async () => {
  upstream = await startFakeUpstream();
});

afterEach(async () => {
  await app?.stop();
  await upstream.close();
  await removeDir(app.dataDir);
});

describe('POST /api/task-sync, batch', () => {
  it('answers 202 with a jobId, Location and Retry-After, then the job can be polled to success', async () => {
    await start();
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/a`, records: ['r1', 'r2', 'r3'] } });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('queued');
    expect(res.json.jobId).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('location')).toBe(`/api/task-sync/status/${res.json.jobId}`);
    expect(res.headers.get('retry-after')).toBe('2');

    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.status).toBe('success');
    expect(job.results.map((r: any) => r.recordId).sort()).toEqual(['r1', 'r2', 'r3']);
    for (const r of job.results) {
      expect(r).toMatchObject({ status: 'success', httpStatus: 200, attempts: 1, response: '{"ok":true}' });
      expect(typeof r.durationMs).toBe('number');
    }
    expect(job.createdAt).toBeTruthy();
    expect(job.completedAt).toBeTruthy();
    expect(Date.parse(job.updatedAt)).toBeGreaterThanOrEqual(Date.parse(job.createdAt));

    // What the upstream received: one POST per record, JSON {recordId}, with dedupe headers.
    expect(upstream.calls).toHaveLength(3);
    const call = upstream.callsFor('r2')[0]!;
    expect(call.path).toBe('/hooks/a');
    expect(call.body).toEqual({ recordId: 'r2' });
    expect(call.headers['x-bridge-job-id']).toBe(res.json.jobId);
    expect(call.headers['x-bridge-record-id']).toBe('r2');
    expect(call.headers['idempotency-key']).toBe(`${res.json.jobId}:r2`);
  });

  it('reports partial when some records fail and others succeed, and error when all fail', async () => {
    upstream.handler = (call) => (call.body.recordId.startsWith('bad') ? { status: 400, body: { error: 'no such record' } } : { status: 200 });
    await start();
    const mixed = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: ['ok1', 'bad1', 'ok2'] } });
    const job = await waitForJob(app.url, mixed.json.jobId);
    expect(job.status).toBe('partial');
    const bad = job.results.find((r: any) => r.recordId === 'bad1');
    expect(bad).toMatchObject({ status: 'error', httpStatus: 400, attempts: 1, response: '{"error":"no such record"}' });
    expect(bad.error).toContain('HTTP 400');
    expect(upstream.callsFor('bad1')).toHaveLength(1); // a 4xx is not retried

    const allBad = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: ['bad2', 'bad3'] } });
    expect((await waitForJob(app.url, allBad.json.jobId)).status).toBe('error');
  });

  it('retries 5xx answers with backoff and records the attempts', async () => {
    upstream.handler = (call) => (upstream.callsFor(call.body.recordId).length < 3 ? { status: 503 } : { status: 200 });
    await start({ TASK_SYNC_RETRIES: '2' }); // two extra tries: the third call succeeds
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: ['flaky'] } });
    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.status).toBe('success');
    expect(job.results[0]).toMatchObject({ status: 'success', attempts: 3 });
    expect(upstream.callsFor('flaky')).toHaveLength(3);
  });

  it('gives up after the first try plus TASK_SYNC_RETRIES on a 5xx and on a refused connection', async () => {
    upstream.handler = () => ({ status: 502 });
    await start({ TASK_SYNC_RETRIES: '1', TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/,http://127.0.0.1:9/` });
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: ['a'] } });
    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.results[0]).toMatchObject({ status: 'error', httpStatus: 502, attempts: 2 });
    expect(upstream.callsFor('a')).toHaveLength(2);

    // Port 9 (discard) on loopback has no listener here: connection refused, retried, then error.
    const refused = await api(app.url, '/api/task-sync', { body: { webhookUrl: 'http://127.0.0.1:9/x', records: ['b'] } });
    const job2 = await waitForJob(app.url, refused.json.jobId);
    expect(job2.status).toBe('error');
    expect(job2.results[0].attempts).toBe(2);
    expect(job2.results[0].error).toMatch(/ECONNREFUSED/);
  });

  it('never has more than TASK_SYNC_CONCURRENCY calls in flight across jobs', async () => {
    upstream.handler = () => ({ status: 200, delayMs: 40 });
    await start({ TASK_SYNC_CONCURRENCY: '3' });
    const records = Array.from({ length: 12 }, (_, i) => `r${i}`);
    const a = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/a`, records } });
    const b = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/b`, records } });
    await waitForJob(app.url, a.json.jobId);
    await waitForJob(app.url, b.json.jobId);
    expect(upstream.calls).toHaveLength(24);
    expect(upstream.maxInFlight).toBe(3);
  });
});

describe('POST /api/task-sync, single record', () => {
  it('waits for the one call and answers 200 with the final status and result', async () => {
    await start();
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/s`, recordId: 'rec-1' } });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'success', mode: 'single', total: 1, done: 1 });
    expect(res.json.results[0]).toMatchObject({ recordId: 'rec-1', status: 'success', httpStatus: 200 });
    expect((await api(app.url, `/api/task-sync/status/${res.json.jobId}`)).json.status).toBe('success');
  });

  it('answers 202 accepted when the upstream is slower than timeout, and the job stays pollable', async () => {
    upstream.handler = () => ({ status: 200, delayMs: 1500 });
    await start();
    const started = Date.now();
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/slow`, recordId: 'slow-1', timeout: 0.3 } });
    expect(Date.now() - started).toBeLessThan(1400);
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ status: 'accepted', jobId: expect.any(String) });
    const job = (await api(app.url, `/api/task-sync/status/${res.json.jobId}`)).json;
    expect(job.status).toBe('accepted');
    expect(job.results[0]).toMatchObject({ recordId: 'slow-1', status: 'accepted', attempts: 1 });
    expect(upstream.callsFor('slow-1')).toHaveLength(1); // a read timeout is not retried
  });

  it('answers 200 with status error when the upstream refuses the record', async () => {
    upstream.handler = () => ({ status: 404, body: { msg: 'unknown flow' } });
    await start();
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/s`, recordId: 'x' } });
    expect(res.status).toBe(200);
    expect(res.json.status).toBe('error');
    expect(res.json.results[0]).toMatchObject({ httpStatus: 404, response: '{"msg":"unknown flow"}' });
  });
});

describe('POST /api/task-sync, refused input', () => {
  beforeEach(() => start());

  const refuse = async (body: unknown, message: RegExp) => {
    const res = await api(app.url, '/api/task-sync', { body });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe('bad_request');
    expect(res.json.error.message).toMatch(message);
    return res;
  };

  it('names the problem for wrong shapes and types', async () => {
    await refuse({ records: ['a'] }, /webhookUrl/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a` }, /either recordId .* or records/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, recordId: 'a', records: ['b'] }, /not both/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, records: [] }, /records: must hold at least 1/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, records: ['ok', ''] }, /records\.1: must be a non-empty string/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, records: ['ok', 7] }, /records\.1/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, records: 'r1' }, /records: must be an array/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, records: Array.from({ length: 501 }, (_, i) => `r${i}`) }, /at most 500/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, recordId: 'a', timeout: 'soon' }, /timeout: must be a number/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, recordId: 'a', timeout: 0 }, /timeout: must be greater than 0/);
    await refuse({ webhookUrl: `${upstream.url}/hooks/a`, recordId: 'a', timeout: 100000 }, /timeout: must be at most 120/);
    expect(upstream.calls).toHaveLength(0);
  });

  it('refuses URLs outside the allow-list, other schemes and credentials, and calls nothing', async () => {
    await refuse({ webhookUrl: `${upstream.url}/other/a`, recordId: 'a' }, /not in the allow-list/);
    await refuse({ webhookUrl: `http://127.0.0.2:${new URL(upstream.url).port}/hooks/a`, recordId: 'a' }, /not in the allow-list/);
    await refuse({ webhookUrl: `${upstream.url}.evil.test/hooks/a`, recordId: 'a' }, /not an absolute URL|not in the allow-list/);
    await refuse({ webhookUrl: `ftp://127.0.0.1/hooks/a`, recordId: 'a' }, /scheme "ftp" is not allowed/);
    await refuse({ webhookUrl: `file:///etc/passwd`, recordId: 'a' }, /scheme "file" is not allowed/);
    await refuse({ webhookUrl: `http://user:pw@${new URL(upstream.url).host}/hooks/a`, recordId: 'a' }, /credentials/);
    await refuse({ webhookUrl: 'not a url', recordId: 'a' }, /not an absolute URL/);
    const res = await refuse({ webhookUrl: 'https://open.feishu.cn/anycross/trigger/callback/x', recordId: 'a' }, /allow-list/);
    expect(res.json.error.details.allowedPrefixes).toEqual([`${upstream.url}/hooks/`]);
    expect(upstream.calls).toHaveLength(0);
  });

  it('answers 503 and calls nothing when the job cannot be saved', async () => {
    await removeDir(app.dataDir);
    await writeFile(app.dataDir, 'the data dir is now a file');
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/a`, records: ['a'] } });
    expect(res.status).toBe(503);
    expect(res.json.error.message).toMatch(/could not be saved/);
    expect((await api(app.url, '/readyz')).status).toBe(503);
    await new Promise((r) => setTimeout(r, 50));
    expect(upstream.calls).toHaveLength(0);
    await rm(app.dataDir);
  });

  it('answers 404 for an unknown job id', async () => {
    const res = await api(app.url, '/api/task-sync/status/does-not-exist');
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ code: 'not_found', message: expect.stringContaining('does-not-exist') });
  });
});

describe('Idempotency-Key', () => {
  beforeEach(() => start());

  it('returns the same job for the same key and body, 409 for a different body', async () => {
    const body = { webhookUrl: `${upstream.url}/hooks/i`, records: ['a', 'b'] };
    const headers = { 'idempotency-key': 'order-42' };
    const first = await api(app.url, '/api/task-sync', { body, headers });
    const again = await api(app.url, '/api/task-sync', { body, headers });
    expect(again.status).toBe(202);
    expect(again.json.jobId).toBe(first.json.jobId);
    expect(again.headers.get('idempotent-replayed')).toBe('true');

    const other = await api(app.url, '/api/task-sync', { body: { ...body, records: ['c'] }, headers });
    expect(other.status).toBe(409);
    expect(other.json.error).toMatchObject({ code: 'conflict', details: { jobId: first.json.jobId } });

    await waitForJob(app.url, first.json.jobId);
    expect(upstream.calls).toHaveLength(2); // one job's worth of calls
  });

  it('makes one job for concurrent requests with the same key', async () => {
    const body = { webhookUrl: `${upstream.url}/hooks/i`, records: ['a'] };
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => api(app.url, '/api/task-sync', { body, headers: { 'idempotency-key': 'burst' } })),
    );
    expect(new Set(answers.map((a) => a.json.jobId)).size).toBe(1);
  });

  it('takes prototype-named keys as plain keys', async () => {
    for (const key of ['__proto__', 'constructor', 'hasOwnProperty']) {
      const body = { webhookUrl: `${upstream.url}/hooks/p`, records: [key] };
      const first = await api(app.url, '/api/task-sync', { body, headers: { 'idempotency-key': key } });
      expect(first.status, key).toBe(202);
      const again = await api(app.url, '/api/task-sync', { body, headers: { 'idempotency-key': key } });
      expect(again.json.jobId, key).toBe(first.json.jobId);
      expect((await api(app.url, '/api/task-sync', { body: { ...body, records: ['x'] }, headers: { 'idempotency-key': key } })).status, key).toBe(409);
      await waitForJob(app.url, first.json.jobId);
    }
  });

  it('refuses a key longer than 255 characters', async () => {
    const res = await api(app.url, '/api/task-sync', {
      body: { webhookUrl: `${upstream.url}/hooks/i`, recordId: 'a' },
      headers: { 'idempotency-key': 'k'.repeat(256) },
    });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/Idempotency-Key must be 1 to 255/);
    expect(upstream.calls).toHaveLength(0);
  });
});

describe('job ownership', () => {
  beforeEach(() => start({ API_TOKENS: 'tok-a,tok-b' }));

  const body = () => ({ webhookUrl: `${upstream.url}/hooks/own`, records: ['o1', 'o2'] });
  /** The answer with the id taken out, so two 404s for different ids can be compared whole. */
  const shape = (res: { status: number; json: any }, id: string) => ({ status: res.status, json: JSON.parse(JSON.stringify(res.json).split(id).join('<id>')) });

  it('shows a job only to the token that created it; another token gets the same 404 as an unknown job', async () => {
    const created = await api(app.url, '/api/task-sync', { body: body(), token: 'tok-a' });
    expect(created.status).toBe(202);
    const id = created.json.jobId as string;
    await waitForJob(app.url, id, undefined, 'tok-a');

    const mine = await api(app.url, `/api/task-sync/status/${id}`, { token: 'tok-a' });
    expect(mine.status).toBe(200);
    expect(mine.json.jobId).toBe(id);

    const theirs = await api(app.url, `/api/task-sync/status/${id}`, { token: 'tok-b' });
    const unknownId = '00000000-0000-4000-8000-000000000000';
    const unknown = await api(app.url, `/api/task-sync/status/${unknownId}`, { token: 'tok-b' });
    expect(theirs.status).toBe(404);
    expect(shape(theirs, id)).toEqual(shape(unknown, unknownId));
    expect(JSON.stringify(theirs.json)).not.toMatch(/o1|o2|hooks|success/);
  });

  it('a replayed Idempotency-Key from another token makes that token its own job', async () => {
    const headers = { 'idempotency-key': 'shared-key' };
    const a = await api(app.url, '/api/task-sync', { body: body(), token: 'tok-a', headers });
    const aAgain = await api(app.url, '/api/task-sync', { body: body(), token: 'tok-a', headers });
    expect(aAgain.json.jobId).toBe(a.json.jobId);
    expect(aAgain.headers.get('idempotent-replayed')).toBe('true');

    const b = await api(app.url, '/api/task-sync', { body: body(), token: 'tok-b', headers });
    expect(b.status).toBe(202);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    expect(b.json.jobId).not.toBe(a.json.jobId);
    // and B's own replay finds B's job, not A's
    expect((await api(app.url, '/api/task-sync', { body: body(), token: 'tok-b', headers })).json.jobId).toBe(b.json.jobId);
    // a different body under the same key is a conflict only within one token
    expect((await api(app.url, '/api/task-sync', { body: { ...body(), records: ['zz'] }, token: 'tok-a', headers })).status).toBe(409);

    await waitForJob(app.url, a.json.jobId, undefined, 'tok-a');
    await waitForJob(app.url, b.json.jobId, undefined, 'tok-b');
    expect((await api(app.url, `/api/task-sync/status/${b.json.jobId}`, { token: 'tok-a' })).status).toBe(404);
    expect((await api(app.url, `/api/task-sync/status/${a.json.jobId}`, { token: 'tok-b' })).status).toBe(404);
    expect(upstream.calls).toHaveLength(4); // two jobs, two records each
  });

  it('answers 404 for prototype-named, non-ASCII, encoded and odd job ids', async () => {
    const ids = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', '你好', 'ünïcödé', '%00', 'a%2Fb', '..', '%2e%2e', ' ', 'x'.repeat(2000)];
    for (const id of ids) {
      const res = await api(app.url, `/api/task-sync/status/${id.startsWith('%') || id.includes('%') ? id : encodeURIComponent(id)}`, { token: 'tok-a' });
      expect(res.status, id).toBe(404);
      expect(res.json.error.code, id).toBe('not_found');
    }
  });
});
