import { afterEach, describe, expect, it } from 'vitest';
import { CARD_BY_MESSAGE, POSTED_CARDS, type PostedCard } from '../src/pollers/feed.js';
import { dedupKeyOf } from '../src/pollers/poll-run.js';
import { POLLER_SEEN } from '../src/pollers/poller-state.js';
import { larkError } from './lark-emulator/emulator.js';
import { GUANCE_KEY, guanceFlow, ONCALL_CHAT, startPollerHarness, TestClock, type PollerHarness } from './helpers/poller-harness.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api } from './helpers/test-app.js';

/**
 * One poller run at a time, asked for with POST /api/pollers/:id/run, against the fake Guance
 * and the Lark emulator, with a clock the test moves: what ends up in the chat is what a user sees.
 */
let h: PollerHarness;
afterEach(async () => h?.close());

const sec = (ms: number) => Math.floor(ms / 1000);
const titles = (hh: PollerHarness) => hh.cardsIn().map((c) => c.card.header.title.content as string);

async function start(clock: TestClock, flow: Record<string, unknown> = {}, logs?: string[]) {
  h = await startPollerHarness({ clock, logs });
  await h.writeFlow(guanceFlow(h.guance.url, flow));
  return h;
}

describe('a poller run', () => {
  it('posts each new issue once, oldest first, across overlapping windows', async () => {
    const clock = new TestClock();
    await start(clock);
    const t0 = clock.now();
    h.guance.addIssue({ name: 'B disk full', createAt: sec(t0) - 30, level: 'system_level_0' });
    h.guance.addIssue({ name: 'A cpu high', createAt: sec(t0) - 60 });

    const first = await h.runNow();
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ poller: 'guance-issues', ok: true, trigger: 'manual', alreadyPosted: 0 });
    expect(first.json.posted.map((p: any) => p.title)).toEqual(['A cpu high', 'B disk full']);
    expect(titles(h)).toEqual(['[P1] A cpu high', '[P0] B disk full']);

    // Ten seconds later: the window starts 5 minutes before the cursor, so A and B are listed again.
    clock.advance(10_000);
    h.guance.addIssue({ name: 'C queue stuck', createAt: sec(clock.now()) - 2 });
    const second = await h.runNow();
    expect(second.json.posted.map((p: any) => p.title)).toEqual(['C queue stuck']);
    expect(second.json.alreadyPosted).toBe(2);
    expect(new Date(second.json.window.since).getTime()).toBe(t0 - 300_000);

    const third = await h.runNow();
    expect(third.json.posted).toEqual([]);
    expect(titles(h)).toEqual(['[P1] A cpu high', '[P0] B disk full', '[P1] C queue stuck']);
  });

  it('renders the card from templates/issue-card.json: level colour, texts only as plain_text, the replies hint', async () => {
    const clock = new TestClock();
    await start(clock);
    h.guance.addIssue({ name: 'db down <at id=all></at>', createAt: sec(clock.now()) - 5, level: 'system_level_0', resource: 'db-1', description: 'ping <at id=all></at> [x](https://evil.example)' });
    await h.runNow();
    const { card } = h.cardsIn()[0]!;
    expect(card.header.template).toBe('red');
    expect(card.config.update_multi).toBe(true);
    const text = JSON.stringify(card);
    expect(text).toContain('Resource: db-1');
    expect(text).toContain('Level: P0');
    expect(text).toContain('Reply in this thread');
    // Every element that shows a feed text is plain_text: Lark does not read <at> in it.
    const tags = new Set<string>();
    JSON.stringify(card, (k, v) => (k === 'tag' && typeof v === 'string' ? (tags.add(v), v) : v));
    expect(tags.has('lark_md')).toBe(false);
  });

  it('records each posted card (chat, message id) and maps its message id, so a reply in its thread finds the item', async () => {
    const clock = new TestClock();
    await start(clock);
    const issue = h.guance.addIssue({ name: 'mem leak', createAt: sec(clock.now()) - 5 });
    const run = await h.runNow();
    const messageId = run.json.posted[0].messageId as string;
    expect(messageId).toMatch(/^om_/);
    const card = await h.app.deps.store.collection<PostedCard>(POSTED_CARDS).get(`guance-issues:${issue.uuid}`);
    expect(card).toMatchObject({ pollerId: 'guance-issues', itemId: issue.uuid, chatId: ONCALL_CHAT, messageId });
    expect(await h.app.deps.store.keys<string>(CARD_BY_MESSAGE).get(messageId)).toBe(`guance-issues:${issue.uuid}`);
  });

  it('a card Lark refuses is not marked: the next run posts it, the others are posted once', async () => {
    const clock = new TestClock();
    await start(clock);
    h.guance.addIssue({ name: 'first', createAt: sec(clock.now()) - 50 });
    h.guance.addIssue({ name: 'second', createAt: sec(clock.now()) - 40 });
    h.lark.failNext('POST /open-apis/im/v1/messages', larkError(400, 230001, 'Your request contains an invalid request parameter'), 1);

    const run = await h.runNow();
    expect(run.json.ok).toBe(false);
    expect(run.json.failed).toMatchObject([{ title: 'first', retryable: false }]);
    expect(run.json.failed[0].error).toContain('230001');
    expect(run.json.posted.map((p: any) => p.title)).toEqual(['second']);
    // The cursor stops at the refused item, so the next window still holds it.
    expect(run.json.cursor).toBe(new Date((sec(clock.now()) - 50) * 1000).toISOString());
    const [listed] = await h.pollers();
    expect(listed.lastError.message).toContain('1 item(s) not posted');

    clock.advance(5_000);
    const again = await h.runNow();
    expect(again.json.posted.map((p: any) => p.title)).toEqual(['first']);
    expect(again.json.alreadyPosted).toBe(1);
    expect(titles(h).sort()).toEqual(['[P1] first', '[P1] second']);
    expect((await h.pollers())[0].lastError).toBeNull();
  });

  it('Lark down (5xx on every try): the rest waits for the next run, the poller backs off, nothing is lost', async () => {
    const clock = new TestClock();
    await start(clock);
    for (let i = 0; i < 3; i++) h.guance.addIssue({ name: `i${i}`, createAt: sec(clock.now()) - 30 + i });
    h.lark.failNext('POST /open-apis/im/v1/messages', larkError(500, 1, 'internal error'), 4); // larkCall tries 4 times

    const run = await h.runNow();
    expect(run.json.posted).toEqual([]);
    expect(run.json.failed).toMatchObject([{ title: 'i0', retryable: true }]);
    expect(run.json.deferred).toBe(2);
    expect(h.lark.callsTo('POST', '/open-apis/im/v1/messages')).toHaveLength(4); // not 12: the rest was not tried
    const [listed] = await h.pollers();
    expect(listed.backoffUntil).not.toBeNull();

    const again = await h.runNow(); // a manual run does not wait for the backoff
    expect(again.json.posted.map((p: any) => p.title)).toEqual(['i0', 'i1', 'i2']);
    expect(titles(h)).toEqual(['[P1] i0', '[P1] i1', '[P1] i2']);
  });

  it('at most maxPerRun cards a run; the cursor stops at the first one left, order is kept across runs', async () => {
    const clock = new TestClock();
    await start(clock, { maxPerRun: 3 });
    for (let i = 0; i < 7; i++) h.guance.addIssue({ name: `n${i}`, createAt: sec(clock.now()) - 100 + i * 10 });
    const counts: number[] = [];
    for (let r = 0; r < 4; r++) {
      clock.advance(1_000);
      counts.push((await h.runNow()).json.posted.length);
    }
    expect(counts).toEqual([3, 3, 1, 0]);
    expect(titles(h)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `[P1] n${i}`));
  });

  it('after downtime the first run catches up, never further back than maxCatchUpSec', async () => {
    const clock = new TestClock();
    await start(clock, { maxCatchUpSec: 3600 });
    const t0 = clock.now();
    await h.runNow(); // cursor = t0
    h.guance.addIssue({ name: 'during downtime, early', createAt: sec(t0) + 30 * 60 });
    h.guance.addIssue({ name: 'during downtime, late', createAt: sec(t0) + 100 * 60 });
    clock.advance(2 * 3_600_000); // two hours later
    const run = await h.runNow();
    expect(new Date(run.json.window.since).getTime()).toBe(clock.now() - 3_600_000);
    expect(run.json.posted.map((p: any) => p.title)).toEqual(['during downtime, late']);

    // Within the cap, a late run takes everything since the cursor.
    h.guance.addIssue({ name: 'x', createAt: sec(clock.now()) + 5 * 60 });
    h.guance.addIssue({ name: 'y', createAt: sec(clock.now()) + 15 * 60 });
    clock.advance(20 * 60_000);
    expect((await h.runNow()).json.posted.map((p: any) => p.title)).toEqual(['x', 'y']);
  });

  it('duplicate ids in one answer, an id named "__proto__", and clock skew: each issue once', async () => {
    const clock = new TestClock();
    await start(clock);
    const now = sec(clock.now());
    h.guance.addIssue({ uuid: 'issue_dup', name: 'dup', createAt: now - 20 });
    h.guance.addIssue({ uuid: 'issue_dup', name: 'dup', createAt: now - 19 });
    h.guance.addIssue({ uuid: '__proto__', name: 'proto', createAt: now - 10 });
    h.guance.addIssue({ uuid: 'constructor', name: 'ctor', createAt: now - 9 });
    // Stamped 10 minutes ahead (the source's clock is fast): Guance lists it once that time comes.
    h.guance.addIssue({ uuid: 'issue_future', name: 'future', createAt: now + 600 });

    const first = await h.runNow();
    expect(first.json.posted.map((p: any) => p.title)).toEqual(['dup', 'proto', 'ctor']);
    expect(await h.app.deps.store.collection<PostedCard>(POSTED_CARDS).get('guance-issues:__proto__')).toMatchObject({ itemId: '__proto__' });

    // Stamped 2 minutes behind (the source's clock is slow) and only now visible: the overlap covers it.
    h.guance.addIssue({ uuid: 'issue_late', name: 'late', createAt: now - 120 });
    clock.advance(11 * 60_000);
    const second = await h.runNow();
    expect(second.json.posted.map((p: any) => p.title)).toEqual(['late', 'future']);
    expect(second.json.alreadyPosted).toBe(3); // the window starts 5 minutes before the cursor
    clock.advance(60_000);
    expect((await h.runNow()).json.posted).toEqual([]);
    expect(titles(h)).toEqual(['[P1] dup', '[P1] proto', '[P1] ctor', '[P1] late', '[P1] future']);
  });

  it('a crash between Lark taking a card and our mark does not post it twice (the uuid is derived from poller and item)', async () => {
    const clock = new TestClock();
    await start(clock);
    const issue = h.guance.addIssue({ name: 'once', createAt: sec(clock.now()) - 5 });
    const first = await h.runNow();
    const messageId = first.json.posted[0].messageId;
    // As if the process died before the mark was written: the seen mark is gone.
    await h.app.deps.store.keys(POLLER_SEEN).delete(`guance-issues:${issue.uuid}`);
    const second = await h.runNow();
    expect(second.json.posted).toMatchObject([{ title: 'once', messageId }]); // Lark answered with the message it has
    expect(h.cardsIn()).toHaveLength(1);
    const sent = h.lark.callsTo('POST', '/open-apis/im/v1/messages').map((c) => c.body.uuid);
    expect(sent).toEqual([dedupKeyOf('guance-issues', issue.uuid), dedupKeyOf('guance-issues', issue.uuid)]);
  });

  it('a restart neither reposts nor loses', async () => {
    const clock = new TestClock();
    await start(clock);
    h.guance.addIssue({ name: 'before', createAt: sec(clock.now()) - 5 });
    await h.runNow();
    await h.restart();
    h.guance.addIssue({ name: 'after', createAt: sec(clock.now()) + 1 });
    clock.advance(5_000);
    const run = await h.runNow();
    expect(run.json.posted.map((p: any) => p.title)).toEqual(['after']);
    expect(titles(h)).toEqual(['[P1] before', '[P1] after']);
    const [listed] = await h.pollers();
    expect(listed.counts).toMatchObject({ runs: 2, posted: 2 });
  });
});

describe('an http feed', () => {
  let feed: FakeUpstream | undefined;
  afterEach(async () => {
    await feed?.close();
    feed = undefined;
  });
  const httpFlow = (url: string) => ({
    replies: false,
    source: { type: 'http', url, itemsPath: 'items', id: 'key', title: 'summary', createdAt: 'created', level: 'priority' },
  });

  it('that ignores the cursor: its history is not posted, only what is new in the window', async () => {
    const clock = new TestClock();
    const t = clock.now();
    let items = [
      { key: 'OLD-1', summary: 'last week', created: t - 7 * 86_400_000, priority: 'P2' },
      { key: 'OLD-2', summary: 'yesterday', created: t - 86_400_000, priority: 'P2' },
      { key: 'NEW-1', summary: 'just now', created: t - 10_000, priority: 'P1' },
    ];
    feed = await startFakeUpstream(() => ({ body: { items } }));
    await start(clock, httpFlow(`${feed.url}/issues`));
    const run = await h.runNow();
    expect(run.json).toMatchObject({ listed: 3, outOfWindow: 2, posted: [{ itemId: 'NEW-1', title: 'just now' }] });
    items = [...items, { key: 'NEW-2', summary: 'next', created: t + 5_000, priority: 'P0' }];
    clock.advance(10_000);
    expect((await h.runNow()).json.posted.map((p: any) => p.itemId)).toEqual(['NEW-2']);
    expect(titles(h)).toEqual(['[P1] just now', '[P0] next']);
  });

  it('with huge texts (CJK, quotes, 40 fields) still fits a Lark card (30 KB)', async () => {
    const clock = new TestClock();
    const t = clock.now();
    const fields = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`F${i}`, `f${i}`]));
    const item = { key: 'BIG', summary: '标题"'.repeat(500), created: t - 1000, body: '描述"\\'.repeat(5000), ...Object.fromEntries(Object.values(fields).map((path) => [path, '值"'.repeat(400)])) };
    feed = await startFakeUpstream(() => ({ body: { items: [item] } }));
    h = await startPollerHarness({ clock });
    await h.writeFlow(guanceFlow(feed.url, { replies: false, source: { type: 'http', url: `${feed.url}/i`, itemsPath: 'items', id: 'key', title: 'summary', createdAt: 'created', description: 'body', fields } }));
    const run = await h.runNow();
    expect(run.json.failed).toEqual([]);
    expect(run.json.posted).toHaveLength(1);
    expect(h.cardsIn()[0]!.card.elements.some((e: any) => e.text?.content?.startsWith('F0: 值'))).toBe(true);
  });

  it('answering 10,000 items: a run posts maxPerRun of them and skips the posted ones quickly', async () => {
    const clock = new TestClock();
    const t = clock.now();
    const items = Array.from({ length: 10_000 }, (_, i) => ({ key: `K${i}`, summary: `item ${i}`, created: t - 60_000 + i }));
    feed = await startFakeUpstream(() => ({ body: { items } }));
    await start(clock, httpFlow(`${feed.url}/issues`));
    const durations: number[] = [];
    for (let r = 0; r < 3; r++) {
      const started = performance.now();
      const run = await h.runNow();
      durations.push(Math.round(performance.now() - started));
      expect(run.json).toMatchObject({ listed: 10_000, alreadyPosted: r * 50, deferred: 10_000 - (r + 1) * 50 });
      clock.advance(1_000);
    }
    expect(h.cardsIn().map((c) => c.card.header.title.content)).toEqual(Array.from({ length: 150 }, (_, i) => `item ${i}`));
    console.log(`poller over a 10,000-item answer: runs of 50 posts took ${durations.join(', ')} ms`);
  });

  it('that repeats an id in one answer: posted once', async () => {
    const clock = new TestClock();
    const t = clock.now();
    feed = await startFakeUpstream(() => ({
      body: { items: [{ key: 'A', summary: 'a (again)', created: t - 3_000 }, { key: 'A', summary: 'a', created: t - 5_000 }, { key: 'B', summary: 'b', created: t - 4_000 }] },
    }));
    await start(clock, httpFlow(`${feed.url}/issues`));
    const run = await h.runNow();
    expect(run.json.posted.map((p: any) => p.title)).toEqual(['a', 'b']); // the earliest copy, oldest first
    expect(h.lark.callsTo('POST', '/open-apis/im/v1/messages')).toHaveLength(2);
  });
});

describe('source failures', () => {
  it('4xx, 5xx, invalid JSON, an unexpected shape and a hung feed are the run error, named; the cursor stays', async () => {
    const clock = new TestClock();
    await start(clock, { source: { type: 'guance', baseUrl: 'http://127.0.0.1:1', apiKey: '${env:TEST_GUANCE_KEY}', channel: 'on-call' } });
    await h.writeFlow(guanceFlow(h.guance.url, { source: { type: 'guance', baseUrl: h.guance.url, apiKey: '${env:TEST_GUANCE_KEY}', channel: 'on-call', timeoutMs: 300 } }));
    const errorOf = async () => (await h.runNow()).json.error as string;
    await h.runNow(); // resolves the channel, sets the cursor
    const cursor = (await h.pollers())[0].cursor;

    h.guance.failNext('POST /api/v1/issue/list', { status: 503, body: { code: 503, errorCode: 'ft.Busy', message: 'try later', success: false } });
    expect(await errorOf()).toMatch(/^source: POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/issue\/list: upstream answered HTTP 503: .*ft\.Busy/);
    h.guance.failNext('POST /api/v1/issue/list', { status: 403, body: { code: 403, errorCode: 'ft.NoPermission', message: 'no', success: false } });
    expect(await errorOf()).toContain('HTTP 403');
    h.guance.failNext('POST /api/v1/issue/list', { raw: '<html>gateway</html>' });
    expect(await errorOf()).toContain('the answer is not valid JSON: <html>gateway</html>');
    h.guance.failNext('POST /api/v1/issue/list', { body: { code: 200, success: true, content: [{ uuid: 'u1', name: 'n', createAt: 'yesterday' }] } });
    expect(await errorOf()).toContain('unexpected answer: content.0.createAt:');
    h.guance.failNext('POST /api/v1/issue/list', { body: { code: 200, success: true, errorCode: 'ft.Expired', message: 'key expired' } });
    expect(await errorOf()).toContain('Guance refused: ft.Expired key expired');
    h.guance.failNext('POST /api/v1/issue/list', { hang: true });
    const started = Date.now();
    expect(await errorOf()).toMatch(/no complete answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);

    const [listed] = await h.pollers();
    expect(listed.cursor).toBe(cursor);
    expect(JSON.stringify(listed)).not.toContain(GUANCE_KEY);
  });

  it('logs an error once per change, not every run; says when it works again', async () => {
    const clock = new TestClock();
    const logs: string[] = [];
    await start(clock, {}, logs);
    for (let i = 0; i < 3; i++) {
      h.guance.failNext('POST /api/v1/issue/list', { status: 500, body: { code: 500, errorCode: 'ft.Internal', message: 'boom', success: false } });
      await h.runNow();
    }
    h.guance.failNext('GET /api/v1/channel/quick_list', { status: 401, body: { code: 401, errorCode: 'ft.AuthenticationFailed', message: 'bad key', success: false } });
    const other = await h.runNow(); // the channel is resolved once per source: this one is already known
    expect(other.json.ok).toBe(true);
    const errorLines = logs.filter((l) => l.includes('"level":50') && l.includes('guance-issues'));
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toContain('HTTP 500');
    expect(logs.some((l) => l.includes('poller guance-issues works again'))).toBe(true);
    const [listed] = await h.pollers();
    expect(listed.counts).toMatchObject({ runs: 4, failedRuns: 3 });
  });

  it('an unknown channel or a wrong API key is said plainly', async () => {
    const clock = new TestClock();
    await start(clock, { source: { type: 'guance', baseUrl: 'http://127.0.0.1:1', apiKey: 'x', channel: 'nope' } });
    await h.writeFlow(guanceFlow(h.guance.url, { source: { type: 'guance', baseUrl: h.guance.url, apiKey: '${env:TEST_GUANCE_KEY}', channel: 'nope' } }));
    expect((await h.runNow()).json.error).toBe('source: no Guance channel named "nope" (the API key sees 2: "on-call", "staging")');
    await h.writeFlow(guanceFlow(h.guance.url, { source: { type: 'guance', baseUrl: h.guance.url, apiKey: 'wrong-key', channel: 'on-call' } }));
    expect((await h.runNow()).json.error).toContain('HTTP 401');
    // The channel by uuid works as well as by name.
    await h.writeFlow(guanceFlow(h.guance.url, { source: { type: 'guance', baseUrl: h.guance.url, apiKey: '${env:TEST_GUANCE_KEY}', channel: h.guance.channels[0]!.uuid } }));
    expect((await h.runNow()).json.ok).toBe(true);
  });
});

describe('the poller routes', () => {
  it('need the API token, answer 404 for an unknown poller and 409 while one runs', async () => {
    const clock = new TestClock();
    await start(clock);
    expect((await api(h.app.url, '/api/pollers', { token: null })).status).toBe(401);
    expect((await api(h.app.url, '/api/pollers/guance-issues/run', { method: 'POST', token: null })).status).toBe(401);
    expect((await api(h.app.url, '/api/pollers/guance-issues/run', { method: 'POST', token: 'wrong' })).status).toBe(401);
    const missing = await h.runNow('nope');
    expect(missing.status).toBe(404);
    expect(missing.json.error.message).toBe('no poller "nope" is in force');

    h.guance.addIssue({ name: 'slow', createAt: sec(clock.now()) - 5 });
    h.lark.latencyMs = 300;
    const [a, b] = await Promise.all([h.runNow(), new Promise((r) => setTimeout(r, 100)).then(() => h.runNow())]);
    h.lark.latencyMs = 0;
    expect(a.status).toBe(200);
    expect(b.status).toBe(409);
    expect(b.json.error.message).toMatch(/^poller guance-issues is running \(a manual run since .*\): try again when it ends$/);
    expect(h.cardsIn()).toHaveLength(1);
  });

  it('GET /api/pollers lists schedule, cursor, last run, counts, where it posts; never a key', async () => {
    const clock = new TestClock();
    await start(clock, { schedule: '*/10 * * * * *' });
    h.guance.addIssue({ name: 'one', createAt: sec(clock.now()) - 5 });
    await h.runNow();
    const [p] = await h.pollers();
    expect(p).toMatchObject({
      id: 'guance-issues',
      name: 'Guance issues',
      schedule: '*/10 * * * * *',
      scheduled: true,
      source: { type: 'guance', target: h.guance.url + '/' },
      notify: { type: 'lark-app', target: ONCALL_CHAT },
      replies: true,
      cursor: new Date(clock.now()).toISOString(),
      lastRun: { trigger: 'manual', posted: 1, listed: 1 },
      lastError: null,
      counts: { runs: 1, posted: 1, failedPosts: 0 },
    });
    expect(typeof p.nextRunAt).toBe('string');
    expect(JSON.stringify(p)).not.toContain(GUANCE_KEY);
  });
});
