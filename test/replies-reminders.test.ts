import { afterEach, describe, expect, it } from 'vitest';
import { LarkApiError } from '../src/lark/lark-error.js';
import type { FeedReply } from '../src/pollers/feed.js';
import { larkError } from './lark-emulator/emulator.js';
import { ALICE, FakeFeedSource, startRepliesHarness, type RepliesHarness } from './helpers/replies-harness.js';

let h: RepliesHarness;
afterEach(async () => {
  await h?.close();
});

const POLLER = 'http-incidents';
const reply = (id: string, text: string, createdAt: number, author = 'Carol (on-call)'): FeedReply => ({ id, itemId: 'INC-1', author, text, createdAt });

/** The texts the bot posted in a card's thread, in order. */
function threadTexts(cardId: string): string[] {
  return [...h.lark.messages.values()].filter((m) => m.root_id === cardId && !m.sender).map((m) => JSON.parse(m.content).text as string);
}

async function withCard() {
  h = await startRepliesHarness();
  const source = new FakeFeedSource();
  h.sources.set(POLLER, source);
  const card = await h.postCard(POLLER, 'INC-1', { title: 'Checkout latency' });
  const post = (replies: FeedReply[]) => h.app.deps.postNewReplies!(POLLER, 'INC-1', replies);
  return { source, card, post };
}

describe('the new-reply reminder', () => {
  it("posts each new comment into the card's thread once, oldest first, across runs and a restart", async () => {
    const { card, post } = await withCard();
    const first = [reply('c2', 'rolled back', 2000), reply('c1', 'looking', 1000)];
    expect(await post(first)).toEqual({ posted: 2, skipped: 0 });
    expect(threadTexts(card.message_id)).toEqual(['💬 New comment by Carol (on-call): looking', '💬 New comment by Carol (on-call): rolled back']);
    const [posted] = [...h.lark.messages.values()].filter((m) => m.root_id === card.message_id);
    expect(posted!.thread_id).toMatch(/^omt_/);

    // The next run's window overlaps: the same two come back with a new one.
    expect(await post([...first, reply('c3', 'fixed', 3000)])).toEqual({ posted: 1, skipped: 2 });
    await h.restart();
    expect(await h.app.deps.postNewReplies!(POLLER, 'INC-1', [...first, reply('c3', 'fixed', 3000)])).toEqual({ posted: 0, skipped: 3 });
    expect(threadTexts(card.message_id)).toHaveLength(3);
  });

  it('two overlapping runs with the same comments post each once', async () => {
    const { card, post } = await withCard();
    const replies = [reply('a', 'one', 1), reply('b', 'two', 2), reply('c', 'three', 3)];
    const results = await Promise.all([post(replies), post(replies)]);
    expect(results.reduce((n, r) => n + r.posted, 0)).toBe(3);
    expect(threadTexts(card.message_id)).toHaveLength(3);
  });

  it('a post Lark refuses is not marked: the error goes to the run and the comment is posted next run', async () => {
    const { card, post } = await withCard();
    h.lark.failNext(`POST /open-apis/im/v1/messages/${card.message_id}/reply`, larkError(400, 230002, 'Bot/User can NOT be out of the chat.'), 1);
    const replies = [reply('x', 'first', 1), reply('y', 'second', 2)];
    const err = await post(replies).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarkApiError);
    expect((err as LarkApiError).code).toBe(230002);
    expect(threadTexts(card.message_id)).toEqual([]);
    expect(await post(replies)).toEqual({ posted: 2, skipped: 0 });
    expect(threadTexts(card.message_id)).toEqual(['💬 New comment by Carol (on-call): first', '💬 New comment by Carol (on-call): second']);
  });

  it('does not echo a comment added from the chat when the feed lists it back', async () => {
    const { source, card, post } = await withCard();
    const { event } = h.say({ text: '@_user_1 paged the DBA', replyTo: card.message_id, inThread: true });
    expect((await h.deliver(event)).status).toBe(200);
    await h.idle();
    expect(source.comments).toEqual([{ itemId: 'INC-1', text: 'paged the DBA', author: ALICE.name }]);
    expect(await post([reply('r1', 'paged the DBA', 1, ALICE.name), reply('r2', 'DBA here', 2, 'Dan')])).toEqual({ posted: 1, skipped: 1 });
    expect(threadTexts(card.message_id).filter((t) => t.startsWith('💬'))).toEqual(['💬 New comment by Dan: DBA here']);
  });

  it('skips items posted through a webhook (no thread) and replies of another item', async () => {
    h = await startRepliesHarness();
    h.sources.set(POLLER, new FakeFeedSource());
    await h.postCard(POLLER, 'WH-1', { webhook: true });
    expect(await h.app.deps.postNewReplies!(POLLER, 'WH-1', [{ ...reply('w', 'x', 1), itemId: 'WH-1' }])).toEqual({ posted: 0, skipped: 1 });
    const card = await h.postCard(POLLER, 'INC-1');
    expect(await h.app.deps.postNewReplies!(POLLER, 'INC-1', [{ ...reply('o', 'not mine', 1), itemId: 'INC-2' }])).toEqual({ posted: 0, skipped: 1 });
    expect(threadTexts(card.message_id)).toEqual([]);
    expect(h.lark.calls.filter((c) => c.path.endsWith('/reply'))).toEqual([]);
  });
});
