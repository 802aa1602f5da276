import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLogger, createLogger } from '../src/log.js';
import { requestContext } from '../src/request-context.js';
import { SecretScrubber } from '../src/secret-scrubber.js';
import { startFakeGuance, type FakeGuance } from './fake-guance/fake-guance.js';
import { approvalTaskEvent, signedRequest } from './lark-emulator/event-sender.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, waitFor } from './helpers/test-app.js';

// Every secret a run below uses; none may appear in its log.
const API_TOKEN = 'log-test-api-token-7f3a9c';
const APP_ID = 'cli_a1b2c3d4e5f6f00d';
const APP_SECRET = 'log-test-app-secret-b81e2d';
const ENCRYPT_KEY = 'log-test-encrypt-key-5c0ffe';
const VERIFICATION_TOKEN = 'log-test-verification-token-11aa';
const HOOK_KEY = '3f6c1e2a-9b1d-4c7e-8f00-log-hook-key';
const HOOK_SECRET = 'log-test-hook-signing-secret';
const GUANCE_KEY = 'log-test-guance-api-key-d00d';
const SECRETS = { API_TOKEN, APP_SECRET, ENCRYPT_KEY, VERIFICATION_TOKEN, HOOK_KEY, HOOK_SECRET, GUANCE_KEY };

/** A logger writing into an array, as the service builds it (scrubber included). */
function capture(scrubber: SecretScrubber) {
  const lines: string[] = [];
  const logger = createLogger('trace', { write: (l: string) => (lines.push(l), true) } as unknown as NodeJS.WritableStream, { scrubber });
  return { logger, text: () => lines.join('') };
}

describe('log redaction', () => {
  it('blanks known secret values anywhere in a line, credential fields by name, and credentials inside URLs', () => {
    const scrubber = new SecretScrubber().addFromEnv({ API_TOKENS: `other-token-000000,${API_TOKEN}`, LARK_APP_SECRET: APP_SECRET, LARK_ENCRYPT_KEY: ENCRYPT_KEY, ALERTS_WEBHOOK_SECRET: HOOK_SECRET, PATH: '/usr/bin' });
    const { logger, text } = capture(scrubber);
    logger.info({ headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' } }, 'incoming');
    logger.warn(`client sent ${API_TOKEN} in the body`);
    logger.error({ err: new Error(`POST https://open.feishu.cn/open-apis/bot/v2/hook/${HOOK_KEY} failed`) }, 'notify failed');
    logger.info({ target: `https://oapi.dingtalk.com/robot/send?access_token=${GUANCE_KEY}&timestamp=1` }, 'dingtalk');
    logger.info({ appSecret: 'not-in-the-env-secret', config: { encryptKey: 'also-not-in-env' } }, `key ${ENCRYPT_KEY}, secret ${APP_SECRET} ${HOOK_SECRET}`);
    logger.info(`proxy http://user:${GUANCE_KEY}@proxy.example:3128`);
    const out = text();
    for (const [name, value] of Object.entries(SECRETS)) expect(out, name).not.toContain(value);
    expect(out).not.toContain('not-in-the-env-secret');
    expect(out).not.toContain('also-not-in-env');
    expect(out).toContain('/open-apis/bot/v2/hook/[redacted]');
    expect(out).toContain('access_token=[redacted]&timestamp=1');
    expect(out).toContain('"content-type":"application/json"'); // the rest of the line stays
  });

  it('puts the request id on every line logged while a request is handled', () => {
    const { logger, text } = capture(new SecretScrubber());
    requestContext.run({ reqId: 'req-42', method: 'POST', path: '/api/task-sync' }, () => logger.warn({ jobId: 'j1' }, 'inside'));
    logger.warn('outside');
    const [inside, outside] = text().trim().split('\n').map((l) => JSON.parse(l));
    expect(inside).toMatchObject({ reqId: 'req-42', jobId: 'j1', msg: 'inside' });
    expect(outside.reqId).toBeUndefined();
  });

  it('the access logger (no path redaction, for speed) still blanks secret values and URL credentials, and keeps the request id', () => {
    const scrubber = new SecretScrubber().addFromEnv({ API_TOKENS: API_TOKEN, ALERTS_WEBHOOK_KEY: HOOK_KEY });
    const { logger, text } = capture(scrubber);
    const access = accessLogger(logger);
    requestContext.run({ reqId: 'req-7', method: 'GET', path: '/x' }, () =>
      access.info({ method: 'GET', path: `/hooks/${API_TOKEN}/open-apis/bot/v2/hook/${HOOK_KEY}`, status: 404 }, 'request'),
    );
    const line = JSON.parse(text().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ reqId: 'req-7', method: 'GET', status: 404, msg: 'request' });
    expect(text()).not.toContain(API_TOKEN);
    expect(text()).not.toContain(HOOK_KEY);
  });

  it('the service logger keeps redacting credential fields by name after an access logger is made from it', () => {
    const { logger, text } = capture(new SecretScrubber());
    accessLogger(logger);
    logger.info({ headers: { authorization: 'Bearer never-in-the-env' }, token: 'nor-this' }, 'incoming');
    expect(text()).not.toContain('never-in-the-env');
    expect(text()).not.toContain('nor-this');
  });
});

describe('the log of a real run that uses every secret', () => {
  let dir: string;
  let lark: LarkEmulator;
  let guance: FakeGuance;
  let service: ServiceProcess;

  beforeAll(async () => {
    dir = await tempDir('lark-bridge-logs-');
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET }, customBots: { [HOOK_KEY]: { chatId: 'oc_alerts', secret: HOOK_SECRET } } });
    guance = await startFakeGuance(GUANCE_KEY);
    guance.addIssue({ name: 'disk full on db-1' });
    await mkdir(join(dir, 'flows'));
    await writeFile(
      join(dir, 'flows/alerts.json'),
      JSON.stringify({
        kind: 'poller',
        id: 'alerts',
        name: 'Alerts',
        schedule: '0 0 1 1 *',
        source: { type: 'guance', baseUrl: guance.url, apiKey: '${env:GUANCE_API_KEY}', channel: 'on-call' },
        notify: { webhook: '${env:ALERTS_WEBHOOK}', secret: '${env:ALERTS_WEBHOOK_SECRET}' },
        template: 'issue-card',
      }),
    );
    service = await spawnService({
      LOG_LEVEL: 'trace',
      DATA_DIR: join(dir, 'data'),
      FLOWS_DIR: join(dir, 'flows'),
      API_TOKENS: API_TOKEN,
      LARK_APP_ID: APP_ID,
      LARK_APP_SECRET: APP_SECRET,
      LARK_ENCRYPT_KEY: ENCRYPT_KEY,
      LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN,
      LARK_ASSISTANT_USER_ID: 'assistant',
      LARK_DOMAIN: lark.url,
      CHAT_ID: 'oc_summary',
      GUANCE_API_KEY: GUANCE_KEY,
      ALERTS_WEBHOOK: `${lark.url}/open-apis/bot/v2/hook/${HOOK_KEY}`,
      ALERTS_WEBHOOK_SECRET: HOOK_SECRET,
    });
  });

  afterAll(async () => {
    await service?.kill('SIGTERM');
    await lark?.close();
    await guance?.close();
    if (dir) await removeDir(dir);
  });

  it('never shows a token, the app secret, the encrypt key, a webhook key or an API key, and logs one access line per request', async () => {
    // A poller run through the signed custom-bot webhook; then one the robot refuses (an error line naming the webhook).
    const run = await api(service.url, '/api/pollers/alerts/run', { method: 'POST', token: API_TOKEN, headers: { 'x-request-id': 'poll-1' } });
    expect(run.status).toBe(200);
    expect(lark.callsTo('POST', '/open-apis/bot/v2/hook/')).toHaveLength(1);
    guance.addIssue({ name: 'api latency' });
    lark.failNext(`POST /open-apis/bot/v2/hook/${HOOK_KEY}`, { body: { code: 19021, msg: 'sign match fail' } });
    await api(service.url, '/api/pollers/alerts/run', { method: 'POST', token: API_TOKEN });
    // A summary through the app (tenant token from the app secret); a token in a query string; a wrong token.
    expect((await api(service.url, '/api/endpoint', { body: { summaryText: 'all good' }, token: API_TOKEN })).status).toBe(200);
    expect((await api(service.url, `/api/task-sync/status/nope?token=${API_TOKEN}`, { token: API_TOKEN, headers: { 'x-request-id': 'query-1' } })).status).toBe(404);
    expect((await api(service.url, '/api/task-sync/status/nope', { token: `${API_TOKEN}-wrong` })).status).toBe(401);
    // Lark: the challenge, a signed event, a forged one.
    for (const req of [
      signedRequest({ challenge: 'c1', token: VERIFICATION_TOKEN, type: 'url_verification' }, { encryptKey: ENCRYPT_KEY, noSignature: true }),
      signedRequest(approvalTaskEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, approvalCode: 'AC', instanceCode: 'I', taskId: 't', userId: 'assistant', uuid: 'log-ev-1' }), { encryptKey: ENCRYPT_KEY }),
      signedRequest({ challenge: 'c2', token: VERIFICATION_TOKEN, type: 'url_verification' }, { encryptKey: ENCRYPT_KEY, signature: 'f'.repeat(64) }),
    ]) {
      await fetch(`${service.url}/api/v1/lark/callback`, { method: 'POST', headers: new Headers(req.headers), body: req.raw });
    }
    await waitFor(() => service.output().split('"path":"/api/v1/lark/callback"').length - 1 >= 3);
    await waitFor(() => service.output().includes('"msg":"poller alerts:'));

    const out = service.output();
    for (const [name, value] of Object.entries(SECRETS)) expect(out, `${name} in the log`).not.toContain(value);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>); // all JSON
    const access = lines.filter((l) => l.msg === 'request');
    expect(access.length).toBeGreaterThanOrEqual(8);
    for (const a of access) expect(Object.keys(a).sort()).toEqual(expect.arrayContaining(['method', 'path', 'status', 'ms', 'reqId', 'ip']));
    expect(access.find((a) => a.reqId === 'poll-1')).toMatchObject({ method: 'POST', path: '/api/pollers/alerts/run', status: 200, client: expect.stringMatching(/^token:[0-9a-f]{12}$/) });
    expect(access.find((a) => a.reqId === 'query-1')).toMatchObject({ path: '/api/task-sync/status/nope', status: 404 }); // no query string
    // Lines logged by the work a request does carry its id (the poller run asked for over HTTP).
    expect(lines.some((l) => l.reqId === 'poll-1' && l.msg !== 'request')).toBe(true);
  }, 60_000);
});

describe('pretty output on a terminal', () => {
  it('prints readable lines (not JSON) when stdout is a terminal, still without secrets', async () => {
    const dataDir = await tempDir('lark-bridge-tty-');
    try {
      // `script` gives the service a pseudo-terminal as stdout, as an operator's shell would.
      const root = fileURLToPath(new URL('..', import.meta.url));
      const cmd = `${process.execPath} --import tsx src/main.ts`;
      const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
        cwd: root,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'dumb', DATA_DIR: dataDir, PORT: '0', API_TOKENS: API_TOKEN, LARK_APP_ID: APP_ID, LARK_APP_SECRET: APP_SECRET },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        await waitFor(() => out.includes('Flows:'), 20_000);
        child.stdin.write('\u0003'); // Ctrl-C on the terminal: SIGINT to the service
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      expect(out).toMatch(/stopped/);
      const plain = out.replace(/\u001b\[[0-9;]*m/g, '');
      expect(plain).toMatch(/\bINFO\b.*lark-bridge listening on http:\/\/127\.0\.0\.1:\d+/);
      expect(plain).not.toMatch(/^\{"level"/m);
      expect(plain).not.toContain(APP_SECRET);
      expect(plain).not.toContain(API_TOKEN);
    } finally {
      await removeDir(dataDir);
    }
  }, 40_000);
});
