import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { api, removeDir, startTestApp, tempDir, type TestApp } from './helpers/test-app.js';

/**
 * /readyz as an operator reads it: every check with its detail, the flows by kind and each
 * invalid file with file, JSON path and reason, the Lark tenant token asked for at most once a
 * minute (never once per probe), and 503 with the reason when something is not ready.
 */
const APP_ID = 'cli_c1c2c3d4e5f60042';
const APP_SECRET = 'health-app-secret';

let app: TestApp | undefined;
let lark: LarkEmulator | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await app?.stop();
  await lark?.close();
  if (app) await removeDir(app.dataDir);
  for (const d of dirs.splice(0)) await removeDir(d);
  app = undefined;
  lark = undefined;
});

/** A poller flow that needs neither Lark nor a reachable feed until it runs (a WeCom robot on loopback). */
function pollerFlow(id: string, overrides: Record<string, unknown> = {}) {
  return {
    kind: 'poller',
    id,
    name: `Feed ${id}`,
    schedule: '0 0 1 1 *',
    source: { type: 'http', url: 'http://127.0.0.1:9/feed', id: 'id', title: 'title', createdAt: 'at' },
    notify: { type: 'wecom', webhook: 'http://127.0.0.1:9/cgi-bin/webhook/send?key=k' },
    ...overrides,
  };
}

const readyz = async (url: string) => api(url, '/readyz', { token: null });

describe('GET /readyz: flows', () => {
  it('counts the flows in force by kind and lists every invalid file with file, JSON path and reason', async () => {
    const flowsDir = await tempDir('lark-bridge-health-flows-');
    dirs.push(flowsDir);
    await writeFile(join(flowsDir, 'a.json'), JSON.stringify(pollerFlow('feed-a')));
    await writeFile(join(flowsDir, 'b.json'), JSON.stringify(pollerFlow('feed-b')));
    await writeFile(join(flowsDir, 'broken.json'), JSON.stringify(pollerFlow('feed-c', { schedule: 'every minute' })));
    app = await startTestApp({ FLOWS_DIR: flowsDir });

    const res = await readyz(app.url);
    expect(res.status).toBe(200); // an invalid file does not stop the others: still ready
    expect(res.json.checks.flows).toMatchObject({
      ok: true,
      counts: { approval: 0, poller: 2 },
      invalid: [{ file: 'broken.json', path: 'schedule', reason: expect.stringContaining('invalid cron expression "every minute"') }],
      detail: '2 loaded (0 approval, 2 poller); 1 invalid file(s): broken.json',
    });
    expect(res.json.checks.flows.invalid[0].keeps).toBeUndefined(); // never loaded: nothing of it runs

    // A broken edit of a flow in force: the last good version stays, and /readyz says which.
    await writeFile(join(flowsDir, 'a.json'), '{"kind": "poller", "id": "feed-a", ');
    await app.deps.flows.reload('a.json');
    const after = await readyz(app.url);
    expect(after.json.checks.flows.counts).toEqual({ approval: 0, poller: 2 });
    expect(after.json.checks.flows.invalid).toEqual([
      { file: 'a.json', path: '(file)', reason: expect.stringMatching(/^not valid JSON: /), keeps: 'feed-a' },
      { file: 'broken.json', path: 'schedule', reason: expect.any(String) },
    ]);
  });
});

describe('GET /readyz: Lark tenant token', () => {
  it('is ready once a token is had, and a probe with a cached token makes no Lark call', async () => {
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    app = await startTestApp({ LARK_APP_ID: APP_ID, LARK_APP_SECRET: APP_SECRET, LARK_DOMAIN: lark.url });
    const first = await readyz(app.url);
    expect(first.status).toBe(200);
    expect(first.json.checks['lark-token']).toEqual({ ok: true, detail: expect.stringMatching(/^tenant access token (obtained|cached)$/) });
    expect(first.json.checks['lark-bot']).toMatchObject({ ok: true });

    const callsBefore = lark.calls.length;
    for (let i = 0; i < 5; i++) expect((await readyz(app.url)).json.checks['lark-token']).toEqual({ ok: true, detail: 'tenant access token cached' });
    expect(lark.calls.length).toBe(callsBefore);
  });

  it('is 503 with the reason when Lark refuses the app secret, and probes ask Lark at most once a minute', async () => {
    lark = await startLarkEmulator({ apps: { [APP_ID]: 'the-real-secret' } });
    app = await startTestApp({ LARK_APP_ID: APP_ID, LARK_APP_SECRET: APP_SECRET, LARK_DOMAIN: lark.url });
    const tokenCalls = () => lark!.callsTo('POST', '/open-apis/auth/v3/tenant_access_token/internal').length;

    const res = await readyz(app.url);
    expect(res.status).toBe(503);
    expect(res.json.status).toBe('not_ready');
    expect(res.json.checks['lark-token']).toEqual({ ok: false, detail: expect.stringContaining('cannot get a tenant access token') });
    expect(res.json.checks['lark-token'].detail).toContain('Lark API error 10014: app secret invalid');
    expect(res.json.reason).toContain('lark-token: cannot get a tenant access token');
    expect(JSON.stringify(res.json)).not.toContain(APP_SECRET);

    // The first probe asked (the token check, and the SDK for the bot identity's call); later ones within the minute do not.
    const afterFirst = tokenCalls();
    expect(afterFirst).toBeGreaterThanOrEqual(1);
    expect(afterFirst).toBeLessThanOrEqual(2);
    await Promise.all(Array.from({ length: 10 }, () => readyz(app!.url)));
    for (let i = 0; i < 5; i++) expect((await readyz(app.url)).status).toBe(503);
    expect(tokenCalls()).toBe(afterFirst);
  });

  it('answers within its deadline while Lark does not answer the token request', async () => {
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    lark.route('POST', '/open-apis/auth/v3/tenant_access_token/internal', () => new Promise(() => undefined), { auth: false });
    app = await startTestApp({ LARK_APP_ID: APP_ID, LARK_APP_SECRET: APP_SECRET, LARK_DOMAIN: lark.url, LARK_TIMEOUT_MS: '60000' });
    // The bound is the probe's own (2 s for the token, 3 s for any check); the signal only keeps a broken probe from hanging the suite.
    const res = await fetch(`${app.url}/readyz`, { signal: AbortSignal.timeout(15_000) });
    expect(res.status).toBe(503);
    const body = (await res.json()) as any;
    expect(body.checks['lark-token']).toEqual({ ok: false, detail: 'asking Lark for a tenant access token: no answer yet' });
    expect(body.checks['lark-bot'].ok).toBe(false);
    expect(body.checks.store).toEqual({ ok: true });
  });
});
