import { afterEach, describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import { dingtalkNotifier, dingtalkSign } from '../src/notify/dingtalk.js';
import { larkCustomBotSign, larkWebhookNotifier } from '../src/notify/lark-webhook.js';
import { describeWebhook, NotifyError, type IssueMessage } from '../src/notify/notifier.js';
import { wecomNotifier } from '../src/notify/wecom.js';
import { POSTED_CARDS, type PostedCard } from '../src/pollers/feed.js';
import { createUpstreamClient } from '../src/upstream/client.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { FakeRobots } from './helpers/fake-robots.js';
import { guanceFlow, startPollerHarness, TEMPLATES, TestClock, type PollerHarness } from './helpers/poller-harness.js';

const upstream = createUpstreamClient({ connectTimeoutMs: 1000, verifySsl: true });
const T = Date.UTC(2026, 0, 2, 3, 4, 5);
const message = (o: Partial<IssueMessage> = {}): IssueMessage => ({
  itemId: 'issue_1',
  title: 'db-1 disk full',
  level: 'P0',
  severity: 'critical',
  source: 'Guance issues',
  resource: 'db-1',
  description: 'disk /data at 99%',
  fields: [{ label: 'Region', value: 'cn-east' }],
  createdAt: T,
  url: 'https://console.guance.example/issues/issue_1',
  repliesOn: false,
  ...o,
});
const refusal = async (p: Promise<unknown>): Promise<NotifyError> => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (!(err instanceof NotifyError)) throw new Error(`expected a NotifyError, got ${String(err)}`);
  return err;
};

let lark: LarkEmulator | undefined;
let robots: FakeRobots | undefined;
let h: PollerHarness | undefined;
afterEach(async () => {
  await lark?.close();
  await robots?.close();
  await h?.close();
  lark = robots = h = undefined;
});

describe('the Lark custom bot notifier', () => {
  it('signs as Lark documents (key = timestamp + "\\n" + secret, HMAC-SHA256 over nothing, base64) and posts the card', async () => {
    lark = await startLarkEmulator({ apps: {}, customBots: { 'hook-tok-1': { chatId: 'oc_robot', secret: 'bot-secret' } } });
    const n = larkWebhookNotifier({ webhook: `${lark.url}/open-apis/bot/v2/hook/hook-tok-1`, secret: 'bot-secret', upstream, clock: systemClock, templatesDir: TEMPLATES, template: 'issue-card' });
    await n.post(message(), 'ignored');
    const call = lark.callsTo('POST', '/open-apis/bot/v2/hook/')[0]!;
    expect(call.body.sign).toBe(larkCustomBotSign(Number(call.body.timestamp), 'bot-secret'));
    expect(Math.abs(Number(call.body.timestamp) - Date.now() / 1000)).toBeLessThan(5);
    expect(call.body.msg_type).toBe('interactive');
    expect(call.body.card.header).toEqual({ template: 'red', title: { tag: 'plain_text', content: '[P0] db-1 disk full' } });
    expect(call.body.card.config.update_multi).toBeUndefined();
    const [stored] = [...lark.messages.values()];
    expect(stored).toMatchObject({ chat_id: 'oc_robot', msg_type: 'interactive' });
    expect(n.target).toBe(`${lark.url}/open-apis/bot/v2/hook/…`);
  });

  it('a wrong secret is refused by Lark (19021) and said without the hook token; no secret sends no signature', async () => {
    lark = await startLarkEmulator({ apps: {}, customBots: { 'hook-tok-2': { chatId: 'oc_robot', secret: 'right' }, open: { chatId: 'oc_open' } } });
    const wrong = larkWebhookNotifier({ webhook: `${lark.url}/open-apis/bot/v2/hook/hook-tok-2`, secret: 'wrong', upstream, clock: systemClock, templatesDir: TEMPLATES, template: 'issue-card' });
    const e = await refusal(wrong.post(message(), 'k'));
    expect(e.message).toBe(`Lark custom bot ${lark.url}/open-apis/bot/v2/hook/… refused: 19021 sign match fail or timestamp is not within one hour from current time`);
    expect(e.retryable).toBe(false);
    // A clock two hours off signs a stale timestamp: refused too.
    const late = larkWebhookNotifier({ webhook: `${lark.url}/open-apis/bot/v2/hook/hook-tok-2`, secret: 'right', upstream, clock: { now: () => Date.now() - 7_200_000, sleep: systemClock.sleep }, templatesDir: TEMPLATES, template: 'issue-card' });
    expect((await refusal(late.post(message(), 'k'))).message).toContain('19021');
    const open = larkWebhookNotifier({ webhook: `${lark.url}/open-apis/bot/v2/hook/open`, upstream, clock: systemClock, templatesDir: TEMPLATES, template: 'issue-card' });
    await open.post(message(), 'k');
    const unsigned = lark.callsTo('POST', '/open-apis/bot/v2/hook/open')[0]!;
    expect(unsigned.body).not.toHaveProperty('sign');
    expect(unsigned.body).not.toHaveProperty('timestamp');
    lark.failNext('POST /open-apis/bot/v2/hook/open', { body: { code: 11232, msg: 'frequency limited psm[lark.oapi.app_platform_runtime]appID[1]' } });
    expect((await refusal(open.post(message(), 'k'))).retryable).toBe(true);
  });
});

describe('the DingTalk robot notifier', () => {
  it('signs as DingTalk documents (HMAC-SHA256 keyed with the secret over timestamp + "\\n" + secret, ms, in the query) and posts markdown', async () => {
    robots = await new FakeRobots({ accessToken: 'ding-tok', secret: 'SECabc' }, { key: 'wk' }).start();
    const n = dingtalkNotifier({ webhook: `${robots.url}/robot/send?access_token=ding-tok`, secret: 'SECabc', upstream, clock: systemClock });
    await n.post(message(), 'k');
    const [sent] = robots.messages;
    expect(sent!.query.sign).toBe(dingtalkSign(Number(sent!.query.timestamp), 'SECabc'));
    expect(Math.abs(Number(sent!.query.timestamp) - Date.now())).toBeLessThan(5_000);
    expect(sent!.body.msgtype).toBe('markdown');
    expect(sent!.body.markdown.title).toBe('[P0] db-1 disk full');
    expect(sent!.body.markdown.text).toContain('**Resource**: db-1');
    expect(sent!.body.markdown.text).toContain('[Open in source](https://console.guance.example/issues/issue_1)');
    expect(n.target).toBe(`${robots.url}/robot/send?…`);
  });

  it('a wrong secret is refused (310000); "send too fast" (130101) is retryable; the token never shows', async () => {
    robots = await new FakeRobots({ accessToken: 'ding-tok', secret: 'SECabc' }, { key: 'wk' }).start();
    const wrong = dingtalkNotifier({ webhook: `${robots.url}/robot/send?access_token=ding-tok`, secret: 'SECxyz', upstream, clock: systemClock });
    const e = await refusal(wrong.post(message(), 'k'));
    expect(e.message).toMatch(/^DingTalk robot .* refused: 310000 sign not match/);
    expect(e.message).not.toContain('ding-tok');
    expect(e.retryable).toBe(false);
    const right = dingtalkNotifier({ webhook: `${robots.url}/robot/send?access_token=ding-tok`, secret: 'SECabc', upstream, clock: systemClock });
    robots.nextAnswers.push({ platform: 'dingtalk', answer: { errcode: 130101, errmsg: 'send too fast, exceed 20 times per minute' } });
    expect((await refusal(right.post(message(), 'k'))).retryable).toBe(true);
  });
});

describe('the WeCom robot notifier', () => {
  it('posts markdown within 4,096 bytes, the link kept, mentions from the feed defused', async () => {
    robots = await new FakeRobots({ accessToken: 'x' }, { key: 'wecom-key' }).start();
    const n = wecomNotifier({ webhook: `${robots.url}/cgi-bin/webhook/send?key=wecom-key`, upstream });
    await n.post(message({ title: 'ping <@all>', description: '磁盘已满。'.repeat(2000) }), 'k');
    const [sent] = robots.messages;
    const content: string = sent!.body.markdown.content;
    expect(Buffer.byteLength(content)).toBeLessThanOrEqual(4096);
    expect(content.endsWith('[Open in source](https://console.guance.example/issues/issue_1)')).toBe(true);
    expect(content).toContain('<font color="warning">[P0]</font>');
    expect(content).not.toContain('<@all>');
  });

  it('a wrong key is refused (93000) without showing the key; 45009 is retryable', async () => {
    robots = await new FakeRobots({ accessToken: 'x' }, { key: 'wecom-key' }).start();
    const wrong = wecomNotifier({ webhook: `${robots.url}/cgi-bin/webhook/send?key=not-the-key`, upstream });
    const e = await refusal(wrong.post(message(), 'k'));
    expect(e.message).toBe(`WeCom robot ${robots.url}/cgi-bin/webhook/send?… refused: 93000 invalid webhook url`);
    const right = wecomNotifier({ webhook: `${robots.url}/cgi-bin/webhook/send?key=wecom-key`, upstream });
    robots.nextAnswers.push({ platform: 'wecom', answer: { errcode: 45009, errmsg: 'api freq out of limit' } });
    expect((await refusal(right.post(message(), 'k'))).retryable).toBe(true);
  });
});

describe('webhook notifiers in the service', () => {
  it('a poller posting through a Lark custom bot: each issue once in the chat, a record without message id, the hook token never listed', async () => {
    const clock = new TestClock();
    h = await startPollerHarness({ clock, customBots: { 'tok-secret-123': { chatId: 'oc_robot', secret: 'sig' } } });
    process.env.TEST_HOOK_SECRET = 'sig';
    await h.writeFlow(guanceFlow(h.guance.url, { replies: false, notify: { webhook: `${h.lark.url}/open-apis/bot/v2/hook/tok-secret-123`, secret: '${env:TEST_HOOK_SECRET}' } }));
    const issue = h.guance.addIssue({ name: 'via robot', createAt: Math.floor(clock.now() / 1000) - 5 });
    const run = await h.runNow();
    expect(run.json.posted).toEqual([{ itemId: issue.uuid, title: 'via robot' }]);
    clock.advance(1000);
    expect((await h.runNow()).json.alreadyPosted).toBe(1);
    expect(h.cardsIn('oc_robot')).toHaveLength(1);
    const card = await h.app.deps.store.collection<PostedCard>(POSTED_CARDS).get(`guance-issues:${issue.uuid}`);
    expect(card).toMatchObject({ pollerId: 'guance-issues', itemId: issue.uuid });
    expect(card).not.toHaveProperty('messageId');
    const listed = JSON.stringify(await h.pollers());
    expect(listed).not.toContain('tok-secret-123');
    expect(listed).not.toContain('"sig"');
  });

  it('a poller posting to DingTalk with a signature', async () => {
    const clock = new TestClock();
    robots = await new FakeRobots({ accessToken: 'ding-tok', secret: 'SECabc' }, { key: 'wk' }).start();
    h = await startPollerHarness({ clock });
    process.env.TEST_DING_SECRET = 'SECabc';
    await h.writeFlow(guanceFlow(h.guance.url, { replies: false, notify: { type: 'dingtalk', webhook: `${robots.url}/robot/send?access_token=ding-tok`, secret: '${env:TEST_DING_SECRET}' } }));
    h.guance.addIssue({ name: 'to dingtalk', createAt: Math.floor(clock.now() / 1000) - 5 });
    expect((await h.runNow()).json.ok).toBe(true);
    expect(robots.messages.map((m) => m.body.markdown.title)).toEqual(['[P1] to dingtalk']);
  });
});

describe('describeWebhook', () => {
  it('hides the token in the path or the query', () => {
    expect(describeWebhook('https://open.feishu.cn/open-apis/bot/v2/hook/0123-abcd')).toBe('https://open.feishu.cn/open-apis/bot/v2/hook/…');
    expect(describeWebhook('https://oapi.dingtalk.com/robot/send?access_token=abc')).toBe('https://oapi.dingtalk.com/robot/send?…');
    expect(describeWebhook('https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k')).toBe('https://qyapi.weixin.qq.com/cgi-bin/webhook/send?…');
  });
});
