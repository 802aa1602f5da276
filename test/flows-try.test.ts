import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGuance, type FakeGuance } from './fake-guance/fake-guance.js';
import { BUSINESS_SECRET, flowFile, FORM, startHarness, type Harness } from './helpers/approval-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { removeDir, tempDir } from './helpers/test-app.js';

/**
 * `npm run flows:try` as a flow author runs it: a child process, against fakes on loopback.
 * An approval flow shows exactly what the engine sends (compared byte for byte with what the
 * engine did send); a poller reads one page of its source and shows the cards, posting nothing.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PUBLIC_BASE_URL = 'https://bridge.example.test';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the script (through npm when asked, as the README says) with only the given environment. */
function flowsTry(args: string[], env: Record<string, string>, viaNpm = false): Promise<Ran> {
  const [cmd, argv] = viaNpm ? ['npm', ['run', '-s', 'flows:try', '--', ...args]] : [process.execPath, ['--import', 'tsx', 'scripts/flows-try.ts', ...args]];
  const child = spawn(cmd as string, argv as string[], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

let dir: string;
beforeAll(async () => {
  dir = await tempDir('lark-bridge-try-');
});
afterAll(async () => {
  await removeDir(dir);
});

/** Must stay absent: the try opens no store. */
const dataDir = () => join(dir, 'data-must-not-exist');

describe('flows:try on an approval flow', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  it('shows the exact body and signature headers the engine sends its business API for that form', async () => {
    // What the engine really sends: a run through check (sync) and execute (async).
    h.newInstance('INST-TRY');
    await h.pendingAt('INST-TRY', 't-check', 'check_node');
    await h.waitForRun('INST-TRY', (r) => r.steps.at(-1)?.step === 'waiting_approvers');
    await h.pendingAt('INST-TRY', 't-exec', 'execute_node');
    await h.waitForRun('INST-TRY', (r) => r.stages.execute?.state === 'waiting_callback');
    const [check, execute] = h.business.calls;
    expect(check!.path).toBe('/perm/check');
    expect(execute!.path).toBe('/perm/grant');

    // The same flow file and the instance as Lark's approval/v4/instances/:code answers it.
    const flowPath = join(dir, 'admin-permission.json');
    await writeFile(flowPath, await readFile(join(h.flowsDir, 'admin-permission.json')));
    const samplePath = join(dir, 'instance.json');
    await writeFile(samplePath, JSON.stringify({ code: 0, msg: 'success', data: { instance_code: 'INST-TRY', user_id: 'applicant1', open_id: 'ou_applicant1', form: FORM } }));
    const callsBefore = h.business.calls.length;

    const ran = await flowsTry([flowPath, '--form', samplePath, '--task', 't-check', '--execute-task', 't-exec', '--at', String(check!.headers['x-bridge-timestamp']), '--json'], {
      TEST_BUSINESS_SECRET: BUSINESS_SECRET,
      PUBLIC_BASE_URL,
      DATA_DIR: dataDir(),
    });
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    const out = JSON.parse(ran.stdout);
    expect(out.fields).toEqual({ account: 'alice', role: 'admin', until: '2026-12-31' });
    const [tryCheck, tryExecute] = out.calls;
    expect(tryCheck).toMatchObject({ stage: 'check', mode: 'sync', method: 'POST', url: `${h.business.url}/perm/check` });
    expect(tryCheck.body).toBe(check!.raw.toString('utf8'));
    for (const name of ['x-bridge-timestamp', 'x-bridge-signature', 'idempotency-key', 'content-type', 'user-agent']) expect(tryCheck.headers[name]).toBe(check!.headers[name]);
    // The execute body carries the callback URL; it is the engine's byte for byte.
    expect(tryExecute).toMatchObject({ stage: 'execute', mode: 'async', url: `${h.business.url}/perm/grant` });
    expect(tryExecute.body).toBe(execute!.raw.toString('utf8'));
    expect(JSON.parse(tryExecute.body).callback_url).toBe(`${PUBLIC_BASE_URL}/api/v1/lark/execute/callback`);
    const ts = tryExecute.headers['x-bridge-timestamp'];
    expect(tryExecute.headers['x-bridge-signature']).toBe(createHmac('sha256', BUSINESS_SECRET).update(`${ts}.${tryExecute.body}`).digest('hex'));

    expect(h.business.calls.length).toBe(callsBefore);
    expect(existsSync(dataDir())).toBe(false);
    expect(ran.stdout).not.toContain(BUSINESS_SECRET);
  });

  it('prints it readably through npm run, from a {"widget": value} sample, and sends nothing', async () => {
    const flowPath = join(dir, 'readable.json');
    await writeFile(flowPath, JSON.stringify(flowFile(h.business.url)));
    const samplePath = join(dir, 'simple-form.json');
    await writeFile(samplePath, JSON.stringify({ Account: 'bob', Role: 'Read only' }));
    const callsBefore = h.business.calls.length;
    const ran = await flowsTry([flowPath, '--form', samplePath, '--ticket', 'T-1'], { TEST_BUSINESS_SECRET: BUSINESS_SECRET, PUBLIC_BASE_URL, DATA_DIR: dataDir() }, true);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain(`check: POST ${h.business.url}/perm/check`);
    expect(ran.stdout).toMatch(/^ {2}x-bridge-signature: [0-9a-f]{64}$/m);
    expect(ran.stdout).toContain('idempotency-key: T-1:check:TRY-TASK:0');
    expect(ran.stdout).toContain('"fields":{"account":"bob","role":"viewer"}');
    expect(ran.stdout).toContain("the flow's secret (${env:TEST_BUSINESS_SECRET})");
    expect(ran.stdout).toContain('Nothing was sent');
    expect(ran.stdout).not.toContain(BUSINESS_SECRET);
    expect(h.business.calls.length).toBe(callsBefore);
  });

  it('names the file, the JSON path and the reason, and exits non-zero', async () => {
    const env = { TEST_BUSINESS_SECRET: BUSINESS_SECRET, PUBLIC_BASE_URL, DATA_DIR: dataDir() };
    const flowPath = join(dir, 'errors.json');
    await writeFile(flowPath, JSON.stringify(flowFile(h.business.url)));
    const badForm = join(dir, 'bad-form.json');
    await writeFile(badForm, JSON.stringify({ Account: '', Role: 'Superuser' }));

    const mapping = await flowsTry([flowPath, '--form', badForm], env);
    expect(mapping.code).toBe(1);
    expect(mapping.stderr).toContain(`FAIL  ${flowPath}: fields.account: the form's "Account" (${badForm}) is required but the form has no value for it`);
    expect(mapping.stderr).toContain(`FAIL  ${flowPath}: fields.role: the form's "Role" (${badForm}): "Superuser" is not one of "Read only", "Admin"`);
    expect(mapping.stdout).toBe('');

    const noSecret = await flowsTry([flowPath, '--form', badForm], { PUBLIC_BASE_URL, DATA_DIR: dataDir() });
    expect(noSecret.code).toBe(1);
    expect(noSecret.stderr).toContain(`FAIL  ${flowPath}: secret: environment variable TEST_BUSINESS_SECRET is not set`);

    const schema = join(dir, 'schema.json');
    await writeFile(schema, JSON.stringify(flowFile(h.business.url, { check: { url: 'ftp://example.test/check' } })));
    const wrong = await flowsTry([schema, '--form', badForm], env);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`FAIL  ${schema}: check.url: must be an http(s) URL`);

    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{"kind": "approval", ');
    const notJson = await flowsTry([broken, '--form', badForm], env);
    expect(notJson.code).toBe(1);
    expect(notJson.stderr).toMatch(new RegExp(`FAIL {2}${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: \\(file\\): not valid JSON: `));

    const sampleNotJson = join(dir, 'sample-broken.json');
    await writeFile(sampleNotJson, '[{"name": ');
    const badSample = await flowsTry([flowPath, '--form', sampleNotJson], env);
    expect(badSample.code).toBe(1);
    expect(badSample.stderr).toContain(`FAIL  ${sampleNotJson}: (file): `);

    const noForm = await flowsTry([flowPath], env);
    expect(noForm.code).toBe(2);
    expect(noForm.stderr).toContain('is an approval flow: give a form sample with --form SAMPLE.json');
    expect(existsSync(dataDir())).toBe(false);
  });
});

describe('flows:try on a poller flow', () => {
  let feed: FakeUpstream;
  let robot: FakeUpstream;
  let guance: FakeGuance;
  let feedAnswer: { status: number; body: unknown };
  const now = Date.now();
  beforeAll(async () => {
    feed = await startFakeUpstream(() => feedAnswer);
    robot = await startFakeUpstream(() => ({ status: 200, body: { code: 0, msg: 'success' } }));
    guance = await startFakeGuance('try-guance-key-0123');
  });
  afterEach(() => {
    feed.calls.length = 0;
  });
  afterAll(async () => {
    await feed.close();
    await robot.close();
    await guance.close();
  });

  function feedFlow(notify: Record<string, unknown>) {
    return {
      kind: 'poller',
      id: 'feed',
      name: 'Ops feed',
      schedule: '*/30 * * * * *',
      source: { type: 'http', url: `${feed.url}/items`, itemsPath: 'data.items', id: 'id', title: 'title', createdAt: 'at', level: 'sev', since: { in: 'query', name: 'since' } },
      notify,
      maxPerRun: 2,
    };
  }

  it('reads one page of its source read-only and shows the cards a run would post, oldest first, posting nothing', async () => {
    feedAnswer = {
      status: 200,
      body: { data: { items: [
        { id: 'c', title: 'queue stuck', at: now - 10_000, sev: 'P2' },
        { id: 'a', title: 'disk full', at: now - 50_000, sev: 'P0' },
        { id: 'b', title: 'cpu high', at: now - 30_000, sev: 'P1' },
      ] } },
    };
    const flowPath = join(dir, 'feed.json');
    await writeFile(flowPath, JSON.stringify(feedFlow({ webhook: '${env:TRY_ROBOT_URL}', secret: '${env:TRY_ROBOT_SECRET}' })));
    const env = { TRY_ROBOT_URL: `${robot.url}/open-apis/bot/v2/hook/robot-key-123`, TRY_ROBOT_SECRET: 'robot-secret-xyz', DATA_DIR: dataDir() };

    const ran = await flowsTry([flowPath, '--since', '2h', '--json'], env);
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    const out = JSON.parse(ran.stdout);
    expect(out).toMatchObject({ flow: 'feed', kind: 'poller', listed: 3, more: 1 });
    expect(out.cards.map((c: any) => [c.itemId, c.title])).toEqual([['a', 'disk full'], ['b', 'cpu high']]);
    const card = out.cards[0];
    expect(card.target).toBe(`${robot.url}/open-apis/bot/v2/hook/…`);
    expect(card.payload.webhook).toBe(`${robot.url}/open-apis/bot/v2/hook/…`);
    expect(card.payload.body).toMatchObject({ msg_type: 'interactive', timestamp: expect.any(String), sign: expect.any(String), card: { header: { template: 'red' } } });
    expect(JSON.stringify(card.payload.body.card)).toContain('disk full');

    // One call to the source, with the window's start; nothing to the robot; no store.
    expect(feed.calls).toHaveLength(1);
    const since = Number(new URL(feed.calls[0]!.path, 'http://x').searchParams.get('since'));
    expect(Math.abs(since - (now - 2 * 3_600_000))).toBeLessThan(60_000);
    expect(robot.calls).toHaveLength(0);
    expect(existsSync(dataDir())).toBe(false);
    expect(ran.stdout).not.toContain('robot-key-123');
    expect(ran.stdout).not.toContain('robot-secret-xyz');

    const text = await flowsTry([flowPath, '--since', '2h'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('listed 3 item(s) in the window; a run posts at most 2, oldest first (1 not shown)');
    expect(text.stdout).toContain('card 1 of 3: item a "disk full"');
    expect(text.stdout).toContain('Read-only: nothing was posted, no cursor moved, no item marked as seen.');
    expect(robot.calls).toHaveLength(0);
  });

  it('shows the app bot message for a chat without Lark credentials', async () => {
    feedAnswer = { status: 200, body: { data: { items: [{ id: 'x', title: 'latency', at: now - 5_000 }] } } };
    const flowPath = join(dir, 'feed-chat.json');
    await writeFile(flowPath, JSON.stringify(feedFlow({ chatId: 'oc_try_chat' })));
    const ran = await flowsTry([flowPath, '--json'], { DATA_DIR: dataDir() });
    expect(ran.code).toBe(0);
    const [card] = JSON.parse(ran.stdout).cards;
    expect(card.payload).toMatchObject({ receive_id: 'oc_try_chat', msg_type: 'interactive', uuid: expect.stringMatching(/^lbp-[0-9a-f]{40}$/), content: { config: { update_multi: true } } });
  });

  it('asks a paged source (Guance) for its first page only', async () => {
    for (let i = 0; i < 12; i++) guance.addIssue({ name: `issue ${i}`, createAt: Math.floor(now / 1000) - 100 + i });
    const flowPath = join(dir, 'guance.json');
    await writeFile(
      flowPath,
      JSON.stringify({ kind: 'poller', id: 'guance', name: 'Guance', schedule: '0 * * * *', source: { type: 'guance', baseUrl: guance.url, apiKey: '${env:TRY_GUANCE_KEY}', channel: 'on-call', pageSize: 5 }, notify: { chatId: 'oc_x' } }),
    );
    const ran = await flowsTry([flowPath, '--json'], { TRY_GUANCE_KEY: 'try-guance-key-0123', DATA_DIR: dataDir() });
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(JSON.parse(ran.stdout).listed).toBe(5);
    expect(guance.callsTo('POST', '/api/v1/issue/list')).toHaveLength(1);
    expect(guance.calls.every((c) => c.path !== '/api/v1/issue/reply/create')).toBe(true);
  });

  it('names the file and the source when the source fails, and exits non-zero', async () => {
    feedAnswer = { status: 500, body: { error: 'feed down' } };
    const flowPath = join(dir, 'feed-down.json');
    await writeFile(flowPath, JSON.stringify(feedFlow({ chatId: 'oc_try_chat' })));
    const ran = await flowsTry([flowPath], { DATA_DIR: dataDir() });
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain(`FAIL  ${flowPath}: source: GET ${feed.url}/items: upstream answered HTTP 500`);
  });
});
