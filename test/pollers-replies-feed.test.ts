import { afterEach, describe, expect, it } from 'vitest';
import { FOLLOWED_CARDS, type FollowedCard } from '../src/pollers/follow-replies.js';
import { ONCALL_CHAT, startPollerHarness, TestClock, type PollerHarness } from './helpers/poller-harness.js';
import { startFakeUpstream, type FakeUpstream, type UpstreamCall } from './helpers/fake-upstream.js';

/**
 * The "new reply" reminder end to end: an http feed that offers a replies feed, the real app
 * (poller runs asked for through POST /api/pollers/:id/run, clock moved by the test), the Lark
 * emulator. New comments of an item show up once each in its card's thread.
 */
let h: PollerHarness;
let feed: FakeUpstream;
afterEach(async () => {
  await h?.close();
  await feed?.close();
});

const POLLER = 'alerts';

interface FeedState {
  items: Array<{ id: string; title: string; at: number }>;
  comments: Map<string, Array<{ cid: string; who: string; body: string; at: number }>>;
  /** The status the comments feed answers for an item (0: answers normally). */
  commentsStatus: (itemId: string) => number;
}

/** An alerts API: GET /alerts lists items, GET /alerts/:id/comments an item's comments. */
async function startFeed(): Promise<FeedState> {
  const state: FeedState = { items: [], comments: new Map(), commentsStatus: () => 0 };
  feed = await startFakeUpstream((call) => {
    const m = /^\/alerts\/([^/]+)\/comments$/.exec(call.path);
    if (m) {
      const itemId = decodeURIComponent(m[1]!);
      const status = state.commentsStatus(itemId);
      if (status) return { status, body: { error: 'comments unavailable' } };
      return { body: { comments: state.comments.get(itemId) ?? [] } };
    }
    if (call.path.startsWith('/alerts')) return { body: { items: state.items } };
    return { status: 404, body: {} };
  });
  return state;
}

function alertsFlow(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'poller',
    id: POLLER,
    name: 'Alerts',
    schedule: '0 0 1 1 *',
    source: {
      type: 'http',
      url: `${feed.url}/alerts`,
      itemsPath: 'items',
      id: 'id',
      title: 'title',
      createdAt: 'at',
      reply: { url: `${feed.url}/alerts/{{itemId}}/comments`, body: { body: '{{text}}', who: '{{author}}' } },
      repliesFeed: { url: `${feed.url}/alerts/{{itemId}}/comments`, itemsPath: 'comments', id: 'cid', author: 'who', text: 'body', createdAt: 'at' },
    },
    notify: { chatId: ONCALL_CHAT },
    replies: true,
    ...overrides,
  };
}

/** The card of an item, by its title. */
const cardOf = (title: string) => h.cardsIn().find((c) => c.card.header.title.content.endsWith(title))!.message;
/** What the bot posted in a card's thread, oldest first. */
const thread = (cardMessageId: string) =>
  [...h.lark.messages.values()].filter((m) => m.root_id === cardMessageId && !m.sender).map((m) => JSON.parse(m.content).text as string);
const commentCalls = (itemId?: string): UpstreamCall[] => feed.calls.filter((c) => c.path.endsWith('/comments') && (!itemId || c.path === `/alerts/${itemId}/comments`));

async function start(overrides: Record<string, unknown> = {}) {
  const clock = new TestClock();
  const state = await startFeed();
  h = await startPollerHarness({ clock });
  await h.writeFlow(alertsFlow(overrides), 'alerts.json');
  return { clock, state };
}

describe('new comments from a replies feed', () => {
  it("are posted once each into the item's card thread, oldest first, across runs and a restart", async () => {
    const { clock, state } = await start();
    const t = clock.now();
    state.items.push({ id: 'A-1', title: 'disk full', at: t - 20_000 }, { id: 'B-2', title: 'cpu high', at: t - 10_000 });
    const first = await h.runNow(POLLER);
    expect(first.json).toMatchObject({ ok: true, replies: { checked: 2, posted: 0, left: 0, failed: [] } });
    expect(h.cardsIn()).toHaveLength(2);

    clock.advance(5_000);
    state.comments.set('A-1', [
      { cid: 'c2', who: 'Dan', body: 'rolled back', at: clock.now() - 1_000 },
      { cid: 'c1', who: 'Carol', body: 'looking', at: clock.now() - 2_000 },
    ]);
    const second = await h.runNow(POLLER);
    expect(second.json.replies).toEqual({ checked: 2, posted: 2, left: 0, failed: [] });
    expect(thread(cardOf('disk full').message_id)).toEqual(['💬 New comment by Carol: looking', '💬 New comment by Dan: rolled back']);
    expect(thread(cardOf('cpu high').message_id)).toEqual([]);

    // Listed again by the next runs (and after a crash): never posted again; a new one is.
    expect((await h.runNow(POLLER)).json.replies.posted).toBe(0);
    await h.restart();
    clock.advance(5_000);
    state.comments.get('A-1')!.push({ cid: 'c3', who: 'Carol', body: 'fixed', at: clock.now() - 500 });
    state.comments.set('B-2', [{ cid: 'b1', who: 'Eve', body: 'noise, closing', at: clock.now() - 500 }]);
    const after = await h.runNow(POLLER);
    expect(after.json.replies).toMatchObject({ checked: 2, posted: 2 });
    expect(thread(cardOf('disk full').message_id)).toEqual(['💬 New comment by Carol: looking', '💬 New comment by Dan: rolled back', '💬 New comment by Carol: fixed']);
    expect(thread(cardOf('cpu high').message_id)).toEqual(['💬 New comment by Eve: noise, closing']);
    const [listed] = await h.pollers();
    expect(listed.counts.repliesPosted).toBe(4);
    expect(listed.lastRun.replies).toMatchObject({ checked: 2, posted: 2 });
  });

  it('checks at most maxReplyChecksPerRun cards per run, each in turn, and stops following a card followRepliesSec after it was posted', async () => {
    const { clock, state } = await start({ followRepliesSec: 600, maxReplyChecksPerRun: 2 });
    const t = clock.now();
    state.items.push({ id: 'I-1', title: 'one', at: t - 3_000 }, { id: 'I-2', title: 'two', at: t - 2_000 }, { id: 'I-3', title: 'three', at: t - 1_000 });
    const first = await h.runNow(POLLER);
    expect(first.json.posted).toHaveLength(3);
    expect(first.json.replies).toMatchObject({ checked: 2, left: 1 });

    // Three runs of two checks: every card is asked twice, none three times.
    clock.advance(1_000);
    await h.runNow(POLLER);
    clock.advance(1_000);
    await h.runNow(POLLER);
    expect(commentCalls()).toHaveLength(6);
    expect(['I-1', 'I-2', 'I-3'].map((id) => commentCalls(id).length)).toEqual([2, 2, 2]);

    // A comment on the card left out of the last run is posted in the next one.
    state.comments.set('I-3', [{ cid: 'x', who: 'Ann', body: 'seen', at: clock.now() }]);
    clock.advance(1_000);
    const next = await h.runNow(POLLER);
    expect(next.json.replies).toMatchObject({ checked: 2, posted: 0, left: 1 });
    clock.advance(1_000);
    expect((await h.runNow(POLLER)).json.replies).toMatchObject({ checked: 2, posted: 1 });
    expect(thread(cardOf('three').message_id)).toEqual(['💬 New comment by Ann: seen']);

    // Ten minutes after posting: the cards are no longer followed, nor their comments asked for.
    clock.advance(600_000);
    state.comments.set('I-1', [{ cid: 'late', who: 'Ann', body: 'too late', at: clock.now() }]);
    const calls = commentCalls().length;
    const late = await h.runNow(POLLER);
    expect(late.json.replies).toEqual({ checked: 0, posted: 0, left: 0, failed: [] });
    expect(commentCalls()).toHaveLength(calls);
    expect(await h.app.deps.store.collection<FollowedCard>(FOLLOWED_CARDS).live()).toEqual([]);
    expect(thread(cardOf('one').message_id)).toEqual([]);
  });

  it('a replies feed that is down is the run error and ends the round; the items are still posted, the comments come next run', async () => {
    const { clock, state } = await start();
    state.items.push({ id: 'A-1', title: 'disk full', at: clock.now() - 2_000 }, { id: 'B-2', title: 'cpu high', at: clock.now() - 1_000 });
    state.comments.set('A-1', [{ cid: 'c1', who: 'Carol', body: 'looking', at: clock.now() }]);
    state.commentsStatus = () => 503;
    const run = await h.runNow(POLLER);
    expect(run.json.ok).toBe(false);
    expect(run.json.posted).toHaveLength(2);
    expect(run.json.error).toMatch(/^new comments of 1 item\(s\) not posted, tried again next run: item A-1: .*503/);
    // Down for one is down for all: the other card is not asked in this run.
    expect(run.json.replies).toMatchObject({ checked: 0, posted: 0, left: 1 });
    expect(commentCalls('B-2')).toEqual([]);
    expect((await h.pollers())[0].lastError.message).toBe(run.json.error);
    expect((await h.pollers())[0].backoffUntil).toBeNull(); // the items went through: no backoff

    state.commentsStatus = () => 0;
    clock.advance(1_000);
    const again = await h.runNow(POLLER);
    expect(again.json).toMatchObject({ ok: true, replies: { checked: 2, posted: 1 } });
    expect(thread(cardOf('disk full').message_id)).toEqual(['💬 New comment by Carol: looking']);
    expect((await h.pollers())[0].lastError).toBeNull();
  });

  it("an item whose comments cannot be read (404) is reported and the other cards are still checked", async () => {
    const { clock, state } = await start();
    state.items.push({ id: 'A-GONE', title: 'deleted alert', at: clock.now() - 2_000 }, { id: 'B-2', title: 'cpu high', at: clock.now() - 1_000 });
    state.comments.set('B-2', [{ cid: 'b1', who: 'Eve', body: 'on it', at: clock.now() }]);
    state.commentsStatus = (itemId) => (itemId === 'A-GONE' ? 404 : 0);
    const run = await h.runNow(POLLER);
    expect(run.json.replies).toMatchObject({ checked: 1, posted: 1, left: 0, failed: [{ itemId: 'A-GONE' }] });
    expect(run.json.error).toMatch(/item A-GONE: .*404/);
    expect(thread(cardOf('cpu high').message_id)).toEqual(['💬 New comment by Eve: on it']);
  });

  it('followRepliesSec 0 follows nothing', async () => {
    const { clock, state } = await start({ followRepliesSec: 0 });
    state.items.push({ id: 'A-1', title: 'disk full', at: clock.now() - 1_000 });
    state.comments.set('A-1', [{ cid: 'c1', who: 'Carol', body: 'looking', at: clock.now() }]);
    const run = await h.runNow(POLLER);
    expect(run.json.posted).toHaveLength(1);
    expect(run.json.replies).toBeUndefined();
    expect(commentCalls()).toEqual([]);
    expect(await h.app.deps.store.collection<FollowedCard>(FOLLOWED_CARDS).live()).toEqual([]);
  });

  it('a poller that posts through a group webhook follows nothing: its cards have no thread the bot can post in', async () => {
    const clock = new TestClock();
    const state = await startFeed();
    h = await startPollerHarness({ clock, customBots: { 'hook-token': { chatId: ONCALL_CHAT } } });
    await h.writeFlow(alertsFlow({ notify: { webhook: `${h.lark.url}/open-apis/bot/v2/hook/hook-token` }, replies: false }), 'alerts.json');
    state.items.push({ id: 'A-1', title: 'disk full', at: clock.now() - 1_000 });
    state.comments.set('A-1', [{ cid: 'c1', who: 'Carol', body: 'looking', at: clock.now() }]);
    const run = await h.runNow(POLLER);
    expect(run.json.posted).toHaveLength(1);
    expect(h.cardsIn()).toHaveLength(1);
    expect(run.json.replies).toBeUndefined();
    expect(commentCalls()).toEqual([]);
  });
});
