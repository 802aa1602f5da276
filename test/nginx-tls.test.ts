import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { approvalTaskEvent, signedRequest } from './lark-emulator/event-sender.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { call, findNginx, freePort, MAKE_CERT, SITE_CONF, startNginx, type Nginx } from './helpers/nginx-proxy.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

// nginx comes from Debian's packages (.ci/run installs nginx-light); without it there is nothing to drive.
const NGINX = findNginx();

const APP_ID = 'cli_a1b2c3d4e5f6c0de';
const APP_SECRET = 'nginx-test-app-secret';
const ENCRYPT_KEY = 'nginx-test-encrypt-key';
const VERIFICATION_TOKEN = 'nginx-test-verification-token';
// nginx's default proxy_read_timeout: a call answered later than this is cut unless the config raises it.
const NGINX_DEFAULT_READ_TIMEOUT_S = 60;

const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

describe('the shipped nginx config', () => {
  it('raises proxy_read_timeout above the longest task-sync wait and matches client_max_body_size to BODY_LIMIT_KB', async () => {
    const conf = await readFile(SITE_CONF, 'utf8');
    const defaults = loadConfig({});
    // A single record waits its timeout (at most TASK_SYNC_MAX_TIMEOUT), the connect timeout and 2 s of slack.
    const longestWaitS = defaults.taskSync.maxTimeoutSec + defaults.taskSync.connectTimeoutMs / 1000 + 2;
    const readTimeout = Number(/proxy_read_timeout (\d+)s;/.exec(conf)?.[1]);
    expect(readTimeout).toBeGreaterThan(longestWaitS);
    expect(conf).toContain(`client_max_body_size ${defaults.bodyLimitBytes / 1024}k;`);
    expect(conf).toMatch(/ssl_protocols TLSv1\.2 TLSv1\.3;/);
    expect(conf).toMatch(/add_header Strict-Transport-Security "max-age=\d+" always;/);
  });
});

describe.skipIf(!NGINX)('nginx with TLS in front of the service (real nginx, real process)', () => {
  let dir: string;
  let nginx: Nginx;
  let service: ServiceProcess;
  let upstream: FakeUpstream;
  let lark: LarkEmulator;
  let ca: string;
  let otherCa: string;
  let https: string;
  let httpBase: string;
  let slowCall: Promise<{ answer: Awaited<ReturnType<typeof call>>; tookMs: number }>;

  beforeAll(async () => {
    dir = await tempDir('lark-bridge-nginx-');
    // The certificate names the address clients use: 127.0.0.1 (the IP in the SAN).
    execFileSync('bash', [MAKE_CERT, '--out', join(dir, 'tls'), '127.0.0.1', 'localhost']);
    execFileSync('bash', [MAKE_CERT, '--out', join(dir, 'other-tls'), '127.0.0.1']);
    ca = await readFile(join(dir, 'tls/ca.crt'), 'utf8');
    otherCa = await readFile(join(dir, 'other-tls/ca.crt'), 'utf8');

    upstream = await startFakeUpstream((c) => (c.body?.recordId === 'slow' ? { status: 200, body: { ok: true }, delayMs: (NGINX_DEFAULT_READ_TIMEOUT_S + 2) * 1000 } : { status: 200, body: { ok: true } }));
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    const flowsDir = join(dir, 'flows');
    execFileSync('mkdir', ['-p', flowsDir, join(dir, 'data')]);
    service = await spawnService({
      DATA_DIR: join(dir, 'data'),
      FLOWS_DIR: flowsDir,
      API_TOKENS: TOKEN,
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/`,
      LARK_APP_ID: APP_ID,
      LARK_APP_SECRET: APP_SECRET,
      LARK_DOMAIN: lark.url,
      LARK_ENCRYPT_KEY: ENCRYPT_KEY,
      LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
      LARK_ASSISTANT_USER_ID: 'assistant',
    });
    const ports = { https: await freePort(), http: await freePort(), upstream: Number(new URL(service.url).port), cert: join(dir, 'tls/server.crt'), key: join(dir, 'tls/server.key') };
    nginx = await startNginx(NGINX!, join(dir, 'nginx'), ports);
    https = `https://127.0.0.1:${ports.https}`;
    httpBase = `http://127.0.0.1:${ports.http}`;

    // Started first, checked last: the other cases run while it waits past nginx's default timeout.
    const started = Date.now();
    slowCall = call(`${https}/api/task-sync`, {
      ca,
      headers: auth,
      body: JSON.stringify({ webhookUrl: `${upstream.url}/hooks/slow`, recordId: 'slow', timeout: NGINX_DEFAULT_READ_TIMEOUT_S + 4 }),
      timeoutMs: 120_000,
    }).then((answer) => ({ answer, tookMs: Date.now() - started }));
  }, 60_000);

  afterAll(async () => {
    await nginx?.stop();
    await service?.kill('SIGTERM');
    await upstream?.close();
    await lark?.close();
    if (dir) await removeDir(dir);
  });

  it('answers /healthz over TLS 1.2+ with HSTS, trusting only the generated CA', async () => {
    const ok = await call(`${https}/healthz`, { ca });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ status: 'ok' });
    expect(['TLSv1.2', 'TLSv1.3']).toContain(ok.protocol);
    expect(ok.headers['strict-transport-security']).toBe('max-age=63072000');
    expect(ok.headers.server).toBe('nginx'); // server_tokens off: no version
  });

  it('fails the handshake for a client that trusts another CA, or only the public ones', async () => {
    await expect(call(`${https}/healthz`, { ca: otherCa })).rejects.toMatchObject({ code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/) });
    await expect(call(`${https}/healthz`)).rejects.toMatchObject({ code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/) });
  });

  it('redirects plain HTTP to HTTPS with the path and query, keeping a POST a POST (308)', async () => {
    const get = await call(`${httpBase}/api/task-sync/status/abc?x=1`);
    expect(get.status).toBe(308);
    expect(get.headers.location).toBe(`${https}/api/task-sync/status/abc?x=1`);
    const post = await call(`${httpBase}/api/v1/lark/callback`, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(308);
    expect(post.headers.location).toBe(`${https}/api/v1/lark/callback`);
  });

  it('refuses a body over BODY_LIMIT_KB at nginx with a JSON 413; a body at the limit reaches the service', async () => {
    const limit = loadConfig({}).bodyLimitBytes;
    const over = await call(`${https}/api/task-sync`, { ca, headers: { ...auth, 'x-request-id': 'too-large-at-nginx' }, body: Buffer.alloc(limit + 1, 0x20) });
    expect(over.status).toBe(413);
    expect(JSON.parse(over.body)).toEqual({ error: { code: 'payload_too_large', message: expect.stringContaining('nginx client_max_body_size') } });
    // A body of exactly the limit passes nginx; the service reads it (and finds no JSON object in the spaces).
    const atLimit = await call(`${https}/api/task-sync`, { ca, headers: { ...auth, 'x-request-id': 'at-the-limit' }, body: Buffer.alloc(limit, 0x20) });
    expect(atLimit.status).toBe(400);
    expect(atLimit.headers['x-request-id']).toBe('at-the-limit');
    await waitFor(() => service.output().includes('"reqId":"at-the-limit"'));
    expect(service.output()).not.toContain('too-large-at-nginx'); // nginx never passed it on
  });

  it("passes the caller's X-Request-Id through, makes one when there is none, and sets X-Forwarded-For itself", async () => {
    const given = await call(`${https}/api/task-sync/status/no-such-job`, { ca, headers: { ...auth, 'x-request-id': 'trace-me-123', 'x-forwarded-for': '203.0.113.7' } });
    expect(given.status).toBe(404);
    expect(given.headers['x-request-id']).toBe('trace-me-123');
    const line = await waitFor(() => accessLine(service.output(), 'trace-me-123'));
    // The client's claimed address is replaced by the one nginx saw.
    expect(line).toMatchObject({ method: 'GET', path: '/api/task-sync/status/no-such-job', status: 404, ip: '127.0.0.1' });

    const made = await call(`${https}/healthz`, { ca });
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/); // nginx's $request_id
    await waitFor(() => accessLine(service.output(), made.headers['x-request-id'] as string));
  });

  it('carries a task-sync record and a signed Lark callback through TLS', async () => {
    const quick = await call(`${https}/api/task-sync`, { ca, headers: auth, body: JSON.stringify({ webhookUrl: `${upstream.url}/hooks/quick`, recordId: 'quick', timeout: 5 }) });
    expect(quick.status).toBe(200);
    expect(JSON.parse(quick.body)).toMatchObject({ status: 'success' });

    const challenge = signedRequest({ challenge: 'ch-nginx', token: VERIFICATION_TOKEN, type: 'url_verification' }, { encryptKey: ENCRYPT_KEY, noSignature: true });
    const answered = await call(`${https}/api/v1/lark/callback`, { ca, headers: Object.fromEntries(challenge.headers), body: challenge.raw });
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body)).toEqual({ challenge: 'ch-nginx' });

    // The signature covers the raw bytes and three headers: nginx passes all of them unchanged.
    const event = approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: 'AC-NGINX', instanceCode: 'I-1', taskId: 't-1', userId: 'assistant', uuid: 'nginx-event-1' });
    const signed = signedRequest(event, { encryptKey: ENCRYPT_KEY });
    const accepted = await call(`${https}/api/v1/lark/callback`, { ca, headers: Object.fromEntries(signed.headers), body: signed.raw });
    expect(accepted.status).toBe(200);
    const forged = signedRequest(event, { encryptKey: ENCRYPT_KEY, signature: '0'.repeat(64) });
    expect((await call(`${https}/api/v1/lark/callback`, { ca, headers: Object.fromEntries(forged.headers), body: forged.raw })).status).toBe(401);
  });

  it('does not cut a single-record task-sync call that waits past nginx’s default 60 s, near its own timeout', async () => {
    const { answer, tookMs } = await slowCall;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 'success', results: [{ recordId: 'slow', status: 'success' }] });
    expect(tookMs).toBeGreaterThan(NGINX_DEFAULT_READ_TIMEOUT_S * 1000);
  }, 120_000);

  // Last: it stops the service.
  it('answers in JSON when the service is not running: 503 with Retry-After', async () => {
    expect(await service.kill('SIGTERM')).toBe(0);
    const down = await call(`${https}/api/task-sync/status/any`, { ca, headers: auth });
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBe('5');
    expect(JSON.parse(down.body)).toEqual({ error: { code: 'unavailable', message: expect.stringContaining('not running') } });
  });
});

/** The service's access log line for a request id. */
function accessLine(output: string, reqId: string): Record<string, unknown> | undefined {
  for (const line of output.split('\n')) {
    if (!line.includes(`"reqId":"${reqId}"`) || !line.includes('"msg":"request"')) continue;
    return JSON.parse(line) as Record<string, unknown>;
  }
  return undefined;
}
