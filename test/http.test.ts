import { afterEach, describe, expect, it } from 'vitest';
import { api, removeDir, startTestApp, TOKEN, type TestApp } from './helpers/test-app.js';

let app: TestApp;
afterEach(async () => {
  await app.stop();
  await removeDir(app.dataDir);
});

describe('health and readiness', () => {
  it('GET /healthz answers {"status":"ok"} without a token', async () => {
    app = await startTestApp();
    const res = await api(app.url, '/healthz', { token: null });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ status: 'ok' });
  });

  it('GET /readyz reports the store check', async () => {
    app = await startTestApp();
    const res = await api(app.url, '/readyz', { token: null });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      status: 'ready',
      checks: { store: { ok: true }, flows: { ok: true, detail: '0 loaded (0 approval, 0 poller)', counts: { approval: 0, poller: 0 }, invalid: [] } },
    });
  });
});

describe('HTTP conventions', () => {
  it('gives every answer a request id, echoing a sane caller id', async () => {
    app = await startTestApp();
    const mine = await api(app.url, '/healthz', { headers: { 'x-request-id': 'abc-123' } });
    expect(mine.headers.get('x-request-id')).toBe('abc-123');
    const generated = await api(app.url, '/healthz', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers unknown routes and methods with a JSON error', async () => {
    app = await startTestApp();
    const missing = await api(app.url, '/nope', { token: null });
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('not_found');
    const wrongMethod = await api(app.url, '/api/task-sync', { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json.error.code).toBe('method_not_allowed');
  });

  it('refuses bad JSON, empty bodies, non-JSON content types and oversize bodies with 4xx JSON', async () => {
    app = await startTestApp({ BODY_LIMIT_KB: '1' });
    const badJson = await api(app.url, '/api/task-sync', { rawBody: '{"webhookUrl": ', headers: { 'content-type': 'application/json' } });
    expect(badJson.status).toBe(400);
    expect(badJson.json.error).toMatchObject({ code: 'bad_request', message: expect.stringContaining('not valid JSON') });

    const empty = await api(app.url, '/api/task-sync', { rawBody: '', headers: { 'content-type': 'application/json' } });
    expect(empty.status).toBe(400);
    expect(empty.json.error.message).toMatch(/empty/);

    const form = await api(app.url, '/api/task-sync', { rawBody: 'a=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).toBe(415);
    expect(form.json.error.code).toBe('unsupported_media_type');

    const array = await api(app.url, '/api/task-sync', { body: ['not', 'an', 'object'] });
    expect(array.status).toBe(400);

    const big = await api(app.url, '/api/task-sync', { body: { webhookUrl: 'x', records: ['y'.repeat(2048)] } });
    expect(big.status).toBe(413);
    expect(big.json.error).toMatchObject({ code: 'payload_too_large', message: 'request body exceeds 1024 bytes' });

    // Chunked (no Content-Length) oversize bodies are cut off too.
    const chunked = await fetch(`${app.url}/api/task-sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(`{"pad":"${'z'.repeat(4096)}"}`));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
  });
});

describe('bearer auth on /api/*', () => {
  it('requires a known token, compared exactly', async () => {
    app = await startTestApp();
    const none = await api(app.url, '/api/task-sync/status/x', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(none.json.error.message).toMatch(/Authorization: Bearer/);
    const wrong = await api(app.url, '/api/task-sync/status/x', { token: `${TOKEN}x` });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error.message).toBe('bearer token is not valid');
    const basic = await api(app.url, '/api/task-sync/status/x', { token: null, headers: { authorization: `Basic ${TOKEN}` } });
    expect(basic.status).toBe(401);
    const ok = await api(app.url, '/api/task-sync/status/x');
    expect(ok.status).toBe(404); // past auth
  });

  it('answers 401 explaining API_TOKENS when no token is configured', async () => {
    app = await startTestApp({ API_TOKENS: '' });
    const res = await api(app.url, '/api/task-sync/status/x');
    expect(res.status).toBe(401);
    expect(res.json.error.message).toMatch(/API_TOKENS is not set/);
  });

  it('lets requests through with API_AUTH=off', async () => {
    app = await startTestApp({ API_TOKENS: '', API_AUTH: 'off' });
    const res = await api(app.url, '/api/task-sync/status/x', { token: null });
    expect(res.status).toBe(404);
  });
});
