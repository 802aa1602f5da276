import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseFlowText } from '../src/flows/load-flows.js';
import { guanceFlow, startPollerHarness, TestClock, type PollerHarness } from './helpers/poller-harness.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const run = promisify(execFile);
const ENV = { GUANCE_KEY: 'k-123', HOOK_SECRET: 'hook-secret' };
const base = guanceFlow('https://openapi.guance.example', { source: { type: 'guance', apiKey: '${env:GUANCE_KEY}', channel: 'on-call' } });
const parse = (flow: Record<string, unknown>, env: Record<string, string> = ENV) => parseFlowText('p.json', JSON.stringify(flow), env);
const problemsOf = (flow: Record<string, unknown>, env?: Record<string, string>) => {
  const r = parse(flow, env);
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
};

describe('poller flow files', () => {
  it('parse with defaults: template issue-card, 5 min overlap, 1 day catch-up, 50 a run, the Guance OpenAPI base', () => {
    const r = parse(base);
    expect(r.ok).toBe(true);
    if (!r.ok || r.flow.kind !== 'poller') throw new Error('expected a poller');
    expect(r.flow).toMatchObject({
      template: 'issue-card',
      overlapSec: 300,
      maxCatchUpSec: 86400,
      maxPerRun: 50,
      replies: true,
      notify: { type: 'lark-app', chatId: 'oc_oncall' },
      source: { type: 'guance', baseUrl: 'https://openapi.guance.com', apiKey: 'k-123', pageSize: 100, timeoutMs: 10000 },
    });
  });

  it('take a cron with seconds, and refuse an invalid one at schedule with the reason', () => {
    expect(problemsOf({ ...base, schedule: '*/1 * * * * *' })).toEqual([]);
    expect(problemsOf({ ...base, schedule: '0 9 * * 1-5' })).toEqual([]);
    expect(problemsOf({ ...base, schedule: '61 * * * * *' })).toEqual(['schedule: invalid cron expression "61 * * * * *": 61 is a invalid expression for second (5 fields, or 6 with seconds first)']);
    expect(problemsOf({ ...base, schedule: 'every minute' })[0]).toMatch(/^schedule: invalid cron expression "every minute": /);
    expect(problemsOf({ ...base, schedule: '* * *' })[0]).toContain('expected 5 or 6 fields but got 3');
    expect(problemsOf({ ...base, timezone: 'Mars/Olympus' })).toEqual(['timezone: unknown time zone "Mars/Olympus" (an IANA name such as Asia/Shanghai)']);
  });

  it('refuse an unknown source type, a missing API key and an unset ${env:}, at their JSON path', () => {
    expect(problemsOf({ ...base, source: { type: 'zabbix', url: 'https://z' } })).toEqual(['source.type: unknown source type: expected "guance" or "http"']);
    expect(problemsOf({ ...base, source: { type: 'guance', channel: 'on-call' } })).toEqual(['source.apiKey: the Guance API key is required: write "${env:GUANCE_API_KEY}"']);
    expect(problemsOf({ ...base, source: { type: 'guance', apiKey: '', channel: 'on-call' } })).toEqual(['source.apiKey: the Guance API key is required: write "${env:GUANCE_API_KEY}"']);
    expect(problemsOf(base, {})).toEqual(['source.apiKey: environment variable GUANCE_KEY is not set']);
    // The shipped example without its variables: one line per missing variable, nothing more.
    expect(problemsOf({ ...base, notify: { chatId: '${env:ONCALL_CHAT}' } }, {})).toEqual([
      'source.apiKey: environment variable GUANCE_KEY is not set',
      'notify.chatId: environment variable ONCALL_CHAT is not set',
    ]);
    expect(problemsOf({ ...base, kind: 'cron' })).toEqual(['kind: unknown kind: expected "approval" or "poller"']);
  });

  it('allow replies only with the app bot, and with an http source only when it says how to reply', () => {
    expect(problemsOf({ ...base, notify: { webhook: 'https://open.feishu.cn/open-apis/bot/v2/hook/abc' } })).toEqual([
      'replies: replies need notify.chatId (the app bot): a group robot webhook cannot receive @bot messages',
    ]);
    expect(problemsOf({ ...base, replies: false, notify: { webhook: 'https://open.feishu.cn/open-apis/bot/v2/hook/abc', secret: '${env:HOOK_SECRET}' } })).toEqual([]);
    const http = { type: 'http', url: 'https://feed.example/items', id: 'id', title: 'title', createdAt: 'ts' };
    expect(problemsOf({ ...base, source: http })).toEqual(['replies: replies need source.reply (how a comment is added to an item)']);
    expect(problemsOf({ ...base, source: { ...http, reply: { url: 'https://feed.example/items/{{itemId}}/comments', body: { text: '{{text}}' } } } })).toEqual([]);
  });

  it('check the notify forms: one target, http(s) webhooks, no secret where the platform has none', () => {
    const n = (notify: unknown) => problemsOf({ ...base, replies: false, notify });
    expect(n({ chatId: 'oc_1', webhook: 'https://x.example/h' })).toEqual(['notify.webhook: give chatId (app bot) or webhook, not both']);
    expect(n({})).toEqual(['notify: notify needs chatId (app bot) or webhook (group robot)']);
    expect(n({ webhook: 'ftp://x.example/h' })).toEqual(['notify.webhook: must be an http(s) URL']);
    expect(n({ webhook: 'javascript:alert(1)' })).toEqual(['notify.webhook: must be an http(s) URL']);
    expect(n({ type: 'wecom', webhook: 'https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k', secret: 's' })).toEqual(['notify.secret: WeCom group robots are not signed: the key is in the webhook URL']);
    expect(n({ type: 'dingtalk', chatId: 'oc_1' })).toEqual(['notify.chatId: dingtalk has no app bot: use webhook']);
    expect(n({ chatId: 'oc_1', secret: 's' })).toEqual(['notify.secret: the app bot needs no secret (it is for webhooks)']);
    const ok = parse({ ...base, replies: false, notify: { type: 'dingtalk', webhook: 'https://oapi.dingtalk.com/robot/send?access_token=t', secret: '${env:HOOK_SECRET}' } });
    expect(ok.ok && ok.flow.kind === 'poller' && ok.flow.notify).toEqual({ type: 'dingtalk', webhook: 'https://oapi.dingtalk.com/robot/send?access_token=t', secret: 'hook-secret' });
  });

  it('check http sources: dot paths, the cursor in the body only with POST', () => {
    const http = { type: 'http', url: 'https://feed.example/items', id: 'id', title: 'title', createdAt: 'ts' };
    const p = (source: unknown) => problemsOf({ ...base, replies: false, source });
    expect(p({ ...http, itemsPath: 'data..items' })).toEqual(['source.itemsPath: must be a dot path such as "data.items" or "id"']);
    expect(p({ ...http, since: { in: 'body', name: 'since' } })).toEqual(['source.since.in: the cursor can go in the body only with method POST']);
    expect(p({ ...http, method: 'POST', since: { in: 'body', name: 'since', format: 's' } })).toEqual([]);
    expect(p({ ...http, url: 'file:///etc/passwd' })).toEqual(['source.url: must be an http(s) URL']);
  });

  it('npm run flows:check reports a bad poller file with file and JSON path, and passes the example', async () => {
    const dir = await tempDir('lark-bridge-pollercheck-');
    await writeFile(join(dir, 'good.json'), JSON.stringify(base));
    await writeFile(join(dir, 'bad-cron.json'), JSON.stringify({ ...base, id: 'bad-cron', schedule: '* * * * * * *' }));
    await writeFile(join(dir, 'bad-source.json'), JSON.stringify({ ...base, id: 'bad-source', source: { type: 'nagios' } }));
    await writeFile(join(dir, 'no-key.json'), JSON.stringify({ ...base, id: 'no-key', source: { type: 'guance', channel: 'x' } }));
    const failed = (await run('npx', ['tsx', 'scripts/flows-check.ts', dir]).catch((e: { code: number; stdout: string }) => e)) as { code: number; stdout: string };
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('FAIL  bad-cron.json: schedule: invalid cron expression "* * * * * * *": expected 5 or 6 fields but got 7');
    expect(failed.stdout).toContain('FAIL  bad-source.json: source.type: unknown source type: expected "guance" or "http"');
    expect(failed.stdout).toContain('FAIL  no-key.json: source.apiKey: the Guance API key is required');
    expect(failed.stdout).toContain('ok    good.json (poller guance-issues)');
    await removeDir(dir);
    const shipped = await run('npx', ['tsx', 'scripts/flows-check.ts', 'flows']);
    expect(shipped.stdout).toContain('ok    guance-issues.json (poller guance-issues)');
  });

  it('the generated flows/flow.schema.json is current', async () => {
    const r = await run('npx', ['tsx', 'scripts/flows-schema.ts', '--check']);
    expect(r.stdout).toContain('is current');
  });
});

describe('loading poller files in the service', () => {
  let h: PollerHarness;
  afterEach(async () => h?.close());

  it('an invalid poller file is never scheduled; a broken edit keeps the last good version scheduled', async () => {
    h = await startPollerHarness({ clock: new TestClock() });
    await h.writeFlow({ ...guanceFlow(h.guance.url), schedule: '99 * * * *' });
    expect(await h.pollers()).toEqual([]);
    expect(h.app.deps.flows.problems().map((p) => `${p.file}: ${p.path}`)).toEqual(['guance-issues.json: schedule']);

    await h.writeFlow(guanceFlow(h.guance.url, { schedule: '*/5 * * * *' }));
    expect((await h.pollers()).map((p) => p.schedule)).toEqual(['*/5 * * * *']);
    await h.writeFlow({ ...guanceFlow(h.guance.url), source: { type: 'guance', channel: 'on-call' } }); // the key went missing
    expect((await h.pollers()).map((p) => p.schedule)).toEqual(['*/5 * * * *']);
  });

  it('a chatId poller without Lark credentials is listed as not scheduled, with the reason, and cannot run', async () => {
    h = await startPollerHarness({ clock: new TestClock(), env: { LARK_APP_ID: undefined, LARK_APP_SECRET: undefined } });
    await h.writeFlow(guanceFlow(h.guance.url));
    const [p] = await h.pollers();
    expect(p).toMatchObject({ scheduled: false, problem: 'notify.chatId posts with the app bot: set LARK_APP_ID and LARK_APP_SECRET (or use a webhook)', nextRunAt: null });
    const r = await h.runNow();
    expect(r.status).toBe(409);
  });
});
