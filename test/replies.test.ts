import { afterEach, describe, expect, it } from 'vitest';
import { CHAT_REPLIES, type ChatReply } from '../src/pollers/replies/chat-replies.js';
import { chatRepliesFor } from '../src/pollers/replies/replies-from-store.js';
import { larkError } from './lark-emulator/emulator.js';
import { ALICE, BOB, FakeFeedSource, ONCALL_CHAT, OTHER_CHAT, readOnlySource, sourceDown, startRepliesHarness, type RepliesHarness } from './helpers/replies-harness.js';
import { waitFor } from './helpers/test-app.js';

let h: RepliesHarness;
afterEach(async () => {
  await h?.close();
});

/** A harness with one poller (`guance-issues`) whose source records comments, and one card on it. */
async function withCard(itemId = 'issue-7f3a', title = 'Disk full on db-1') {
  h = await startRepliesHarness();
  const source = new FakeFeedSource();
  h.sources.set('guance-issues', source);
  const card = await h.postCard('guance-issues', itemId, { title });
  return { source, card };
}

/** Delivers an event, expects Lark's 200, and waits until the bot has nothing left to do. */
async function deliverAndSettle(event: unknown) {
  const res = await h.deliver(event);
  expect(res).toEqual({ status: 200, body: {} });
  await h.idle();
}

describe('@bot replies reach the source with their author', () => {
  it('takes a reply in a card thread: the text without the mention goes to the source as the member, and the bot answers in the thread', async () => {
    const { source, card } = await withCard();
    const { message, event } = h.say({ text: '@_user_1  restarted the disk cleaner, watching it ', replyTo: card.message_id, inThread: true });
    await deliverAndSettle(event);

    expect(source.comments).toEqual([{ itemId: 'issue-7f3a', text: 'restarted the disk cleaner, watching it', author: ALICE.name }]);
    expect(h.answersTo(message.message_id)).toEqual([`✅ Comment added to "Disk full on db-1" (#issue-7f3a#) as ${ALICE.name}.`]);
    // Answered in the card's thread, through the reply API with reply_in_thread.
    const [answer] = h.lark.repliesTo(message.message_id);
    expect(answer!.thread_id).toBe(h.lark.messages.get(card.message_id)!.thread_id);
    expect(answer!.root_id).toBe(card.message_id);
    const call = h.lark.callsTo('POST', `/open-apis/im/v1/messages/${message.message_id}/reply`)[0]!;
    expect(call.body).toMatchObject({ msg_type: 'text', reply_in_thread: true });
    expect(call.body.uuid).toMatch(/^[0-9a-f]{40}$/);
    expect((await h.record(message.message_id))!.state).toBe('answered');
  });

  it('takes `@bot #id# text` written in the group, and answers the message in a thread of its own', async () => {
    const { source } = await withCard();
    const { message, event } = h.say({ text: '@_user_1 #issue-7f3a# ack, @_user_2 is on it', others: [BOB] });
    await deliverAndSettle(event);

    expect(source.comments).toEqual([{ itemId: 'issue-7f3a', text: `ack, @${BOB.name} is on it`, author: ALICE.name }]);
    expect(h.answersTo(message.message_id)).toEqual([`✅ Comment added to "Disk full on db-1" (#issue-7f3a#) as ${ALICE.name}.`]);
    expect(h.lark.repliesTo(message.message_id)[0]!.thread_id).toMatch(/^omt_/);
  });

  it('names the author by open id when the contact API does not tell the name', async () => {
    const { source, card } = await withCard();
    h.chat.contactScope = false;
    const first = h.say({ text: '@_user_1 looking', replyTo: card.message_id, inThread: true });
    await deliverAndSettle(first.event);
    h.chat.contactScope = true;
    const stranger = { openId: 'ou_not_in_contact_range', name: 'Mallory' };
    const second = h.say({ text: '@_user_1 me too', from: stranger, replyTo: card.message_id, inThread: true });
    await deliverAndSettle(second.event);

    expect(source.comments.map((c) => c.author)).toEqual([ALICE.openId, stranger.openId]);
    expect(h.answersTo(first.message.message_id)[0]).toContain(`as ${ALICE.openId}.`);
  });

  it('takes a rich-text (post) message, and answers a mention with no text with what to write', async () => {
    const { source, card } = await withCard();
    const post = {
      title: '',
      content: [
        [{ tag: 'at', user_id: '@_user_1', user_name: 'bot' }, { tag: 'text', text: ' root cause: ' }, { tag: 'a', text: 'runbook', href: 'https://wiki.example.test/rb' }],
        [{ tag: 'text', text: 'second line' }],
      ],
    };
    const rich = h.say({ text: '', messageType: 'post', content: post, replyTo: card.message_id, inThread: true });
    await deliverAndSettle(rich.event);
    expect(source.comments.map((c) => c.text)).toEqual(['root cause: runbook\nsecond line']);

    const bare = h.say({ text: '@_user_1', replyTo: card.message_id, inThread: true });
    await deliverAndSettle(bare.event);
    expect(source.comments).toHaveLength(1);
    expect(h.answersTo(bare.message.message_id)).toEqual(['Nothing to add to "Disk full on db-1" (#issue-7f3a#): write your comment after the mention.']);

    const image = h.say({ text: '', messageType: 'image', content: { image_key: 'img_v2_x' }, replyTo: card.message_id, inThread: true });
    await deliverAndSettle(image.event);
    expect(h.answersTo(image.message.message_id)).toEqual(['Only text messages can be added as comments (this one is image).']);
    expect(source.calls).toBe(1);
  });
});

describe('every other outcome is answered in the thread, never silence', () => {
  it('an unknown #id#, a thread under a message that is no card, and a bare mention', async () => {
    const { source } = await withCard();
    const unknownId = h.say({ text: '@_user_1 #issue-nope# hello' });
    await deliverAndSettle(unknownId.event);
    expect(h.answersTo(unknownId.message.message_id)).toEqual(["❌ No issue #issue-nope# was posted here. Check the id on the card, or reply in the card's thread."]);

    const chatter = h.say({ text: 'lunch?', mentionBot: false });
    const notACard = h.say({ text: '@_user_1 add this', replyTo: chatter.message.message_id, inThread: true });
    await deliverAndSettle(notACard.event);
    expect(h.answersTo(notACard.message.message_id)[0]).toMatch(/^❌ This thread is not under an issue card/);

    const hello = h.say({ text: '@_user_1 hello' });
    await deliverAndSettle(hello.event);
    expect(h.answersTo(hello.message.message_id)).toEqual(['To comment on an issue, reply in the thread of an issue card mentioning me, or write @bot #<issue id># your comment.']);
    expect(source.calls).toBe(0);
  });

  it('a poller with replies: false, a source without a reply API, and a poller no longer configured', async () => {
    const { source, card } = await withCard();
    h.replies.set('guance-issues', false);
    const off = h.say({ text: '@_user_1 please', replyTo: card.message_id, inThread: true });
    await deliverAndSettle(off.event);
    expect(h.answersTo(off.message.message_id)).toEqual(['❌ Replies are turned off for guance-issues ("replies": false in its flow file): the comment was not added to #issue-7f3a#.']);

    h.sources.set('http-feed', readOnlySource);
    const feedCard = await h.postCard('http-feed', 'evt-1');
    const readOnly = h.say({ text: '@_user_1 please', replyTo: feedCard.message_id, inThread: true });
    await deliverAndSettle(readOnly.event);
    expect(h.answersTo(readOnly.message.message_id)).toEqual(['❌ The source of http-feed takes no replies: the comment was not added to #evt-1#.']);

    h.sources.delete('http-feed');
    const gone = h.say({ text: '@_user_1 please', replyTo: feedCard.message_id, inThread: true });
    await deliverAndSettle(gone.event);
    expect(h.answersTo(gone.message.message_id)).toEqual(['❌ The poller that posted #evt-1# (http-feed) is no longer configured: the comment was not added.']);
    expect(source.calls).toBe(0);
  });

  it('a source that fails: the error is told in the thread and nothing is recorded as added', async () => {
    const { source, card } = await withCard();
    source.fail = sourceDown();
    const { message, event } = h.say({ text: '@_user_1 any news?', replyTo: card.message_id, inThread: true });
    await deliverAndSettle(event);
    expect(source.calls).toBe(1);
    expect(h.answersTo(message.message_id)).toEqual(['❌ Could not add the comment to "Disk full on db-1" (#issue-7f3a#): Guance answered 503: service unavailable. Nothing was added; send it again later.']);
    expect((await h.record(message.message_id))!.outcome).toMatchObject({ kind: 'failed' });
  });

  it('several pollers with the same item id in one chat: #id# is ambiguous, the card thread is not', async () => {
    const { source } = await withCard('shared-1');
    const other = new FakeFeedSource();
    h.sources.set('second-poller', other);
    const secondCard = await h.postCard('second-poller', 'shared-1');
    const byId = h.say({ text: '@_user_1 #shared-1# which one?' });
    await deliverAndSettle(byId.event);
    expect(h.answersTo(byId.message.message_id)).toEqual(['❌ Several pollers posted an issue #shared-1# here (guance-issues, second-poller): reply in the thread of the card you mean.']);
    const inThread = h.say({ text: '@_user_1 this one', replyTo: secondCard.message_id, inThread: true });
    await deliverAndSettle(inThread.event);
    expect(other.comments).toEqual([{ itemId: 'shared-1', text: 'this one', author: ALICE.name }]);
    expect(source.calls).toBe(0);
  });
});

describe('only the chat a card was posted to comments through it', () => {
  it('refuses #id# from another chat, with a reply saying so', async () => {
    const { source } = await withCard();
    const { message, event } = h.say({ text: '@_user_1 #issue-7f3a# I know better', chatId: OTHER_CHAT });
    await deliverAndSettle(event);
    expect(source.calls).toBe(0);
    expect(h.answersTo(message.message_id)).toEqual(['❌ Issue #issue-7f3a# was posted to another chat: only members of that chat can comment on it.']);
  });

  it('an id posted to two chats by two pollers: #id# in one chat comments on that chat\'s item', async () => {
    const { source } = await withCard('node-down');
    const otherSource = new FakeFeedSource();
    h.sources.set('other-team', otherSource);
    await h.postCard('other-team', 'node-down', { chatId: OTHER_CHAT });
    await deliverAndSettle(h.say({ text: '@_user_1 #node-down# ours', chatId: OTHER_CHAT }).event);
    expect(otherSource.comments).toEqual([{ itemId: 'node-down', text: 'ours', author: ALICE.name }]);
    expect(source.calls).toBe(0);
  });

  it('refuses a thread reply whose chat is not the card\'s chat', async () => {
    const { source, card } = await withCard();
    const { message, event } = h.say({ text: '@_user_1 sneaky', replyTo: card.message_id, inThread: true });
    event.event.message.chat_id = OTHER_CHAT;
    await deliverAndSettle(event);
    expect(source.calls).toBe(0);
    expect(h.answersTo(message.message_id)).toEqual(['❌ Issue #issue-7f3a# was posted to another chat: only members of that chat can comment on it.']);
  });

  it('refuses #id# of an item posted through a group webhook (no card by the bot)', async () => {
    h = await startRepliesHarness();
    const source = new FakeFeedSource();
    h.sources.set('dingtalk-mirror', source);
    await h.postCard('dingtalk-mirror', 'wh-1', { webhook: true });
    const { message, event } = h.say({ text: '@_user_1 #wh-1# hi' });
    await deliverAndSettle(event);
    expect(source.calls).toBe(0);
    expect(h.answersTo(message.message_id)[0]).toMatch(/^❌ Issue #wh-1# was posted through a group webhook/);
  });
});

describe('messages that are not for the bot', () => {
  it('ignores messages that do not mention the bot, in a card thread or in the group; and messages from bots or direct chats', async () => {
    const { source, card } = await withCard();
    const silentThread = h.say({ text: 'looking into it', mentionBot: false, replyTo: card.message_id, inThread: true });
    const otherMention = h.say({ text: '@_user_1 #issue-7f3a# can you check', mentionBot: false, others: [BOB] });
    for (const m of [silentThread, otherMention]) await deliverAndSettle(m.event);
    const fromBot = h.say({ text: '@_user_1 #issue-7f3a# from a bot' });
    fromBot.event.event.sender.sender_type = 'app';
    const direct = h.say({ text: '@_user_1 #issue-7f3a# in a direct chat' });
    direct.event.event.message.chat_type = 'p2p';
    for (const m of [fromBot, direct]) await deliverAndSettle(m.event);

    expect(source.calls).toBe(0);
    for (const m of [silentThread, otherMention, fromBot, direct]) {
      expect(h.answersTo(m.message.message_id)).toEqual([]);
      expect(await h.record(m.message.message_id)).toBeUndefined();
    }
  });
});

describe('exactly once', () => {
  it('a redelivered message (same message_id, new event id) posts one comment and one answer', async () => {
    const { source, card } = await withCard();
    const { message, event } = h.say({ text: '@_user_1 once', replyTo: card.message_id, inThread: true });
    await deliverAndSettle(event);
    const again = structuredClone(event);
    again.header.event_id = 'a-new-event-id-for-the-same-message';
    await deliverAndSettle(again);
    // And the very same delivery again.
    await deliverAndSettle(event);
    expect(source.comments).toHaveLength(1);
    expect(h.answersTo(message.message_id)).toHaveLength(1);
  });

  it('two deliveries of one message at once (two event ids) post one comment', async () => {
    const { source, card } = await withCard();
    let release!: () => void;
    source.hold = new Promise<void>((r) => (release = r));
    const { message, event } = h.say({ text: '@_user_1 racing', replyTo: card.message_id, inThread: true });
    const twin = structuredClone(event);
    twin.header.event_id = 'twin-event-id';
    const answers = await Promise.all([h.deliver(event), h.deliver(twin), h.deliver(event)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    await waitFor(() => source.calls > 0);
    release();
    await h.idle();
    expect(source.calls).toBe(1);
    expect(source.comments).toHaveLength(1);
    expect(h.answersTo(message.message_id)).toHaveLength(1);
  });

  it('sends the answer once: a retried send and a resend after a restart carry one derived uuid, and Lark keeps one message', async () => {
    const { source, card } = await withCard();
    const { message, event } = h.say({ text: '@_user_1 flaky lark', replyTo: card.message_id, inThread: true });
    const path = `/open-apis/im/v1/messages/${message.message_id}/reply`;
    h.lark.failNext(`POST ${path}`, larkError(500, 1, 'internal error'), 1);
    await deliverAndSettle(event);
    expect(h.lark.callsTo('POST', path)).toHaveLength(2);
    expect(h.answersTo(message.message_id)).toHaveLength(1);

    // A crash after Lark took the answer but before "answered" was written: the start after it sends again.
    const done = (await h.record(message.message_id))!;
    const replies = h.app.deps.store.collection<ChatReply>(CHAT_REPLIES);
    await replies.put({ ...done, state: 'answering' });
    await replies.release([done.id]); // a restart: the lease of the process that died is gone with it
    expect(await h.app.deps.chatReplies!.resume()).toBe(1);
    await h.idle();
    const calls = h.lark.callsTo('POST', path);
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((c) => c.body.uuid)).size).toBe(1);
    expect(h.answersTo(message.message_id)).toHaveLength(1);
    expect(source.comments).toHaveLength(1);
  });

  it('a comment cut short by a restart is not sent again: the thread is told to check', async () => {
    const { source, card } = await withCard();
    let release!: () => void;
    source.hold = new Promise<void>((r) => (release = r));
    const { message, event } = h.say({ text: '@_user_1 mid-flight', replyTo: card.message_id, inThread: true });
    expect((await h.deliver(event)).status).toBe(200);
    await waitFor(() => source.calls === 1);
    // The process dies while the source works; the next start picks up what is on disk.
    const d = h.app.deps;
    await d.store.collection<ChatReply>(CHAT_REPLIES).release([message.message_id]); // the dead process's lease went with it
    const restarted = chatRepliesFor(d.store, { targets: { pollerIds: () => ['guance-issues'], sourceFor: () => source, repliesEnabled: () => true }, bot: d.botIdentity!, userNames: { nameOf: async () => undefined }, messenger: d.messenger!, clock: d.clock, logger: d.logger });
    expect(await restarted.resume()).toBe(1);
    await restarted.idle();
    expect(source.calls).toBe(1);
    expect(h.answersTo(message.message_id)).toEqual(['⚠️ lark-bridge restarted while adding this comment to "Disk full on db-1" (#issue-7f3a#): it may or may not have been added. Check the issue before sending it again.']);
    release();
    await h.idle();
  });
});

describe('ids are plain strings', () => {
  it('handles non-ASCII and prototype-named item ids as ordinary ids', async () => {
    h = await startRepliesHarness();
    const source = new FakeFeedSource();
    h.sources.set('guance-issues', source);
    for (const id of ['__proto__', '告警-磁盘-42']) await h.postCard('guance-issues', id);
    for (const id of ['__proto__', '告警-磁盘-42']) await deliverAndSettle(h.say({ text: `@_user_1 #${id}# 已处理` }).event);
    expect(source.comments.map((c) => [c.itemId, c.text])).toEqual([
      ['__proto__', '已处理'],
      ['告警-磁盘-42', '已处理'],
    ]);
    for (const id of ['constructor', 'toString', 'hasOwnProperty']) {
      const m = h.say({ text: `@_user_1 #${id}# x` });
      await deliverAndSettle(m.event);
      expect(h.answersTo(m.message.message_id)).toEqual([`❌ No issue #${id}# was posted here. Check the id on the card, or reply in the card's thread.`]);
    }
    expect(source.comments).toHaveLength(2);
  });
});

describe('the trust boundary', () => {
  it('refuses a forged or unsigned message event with 401 and posts nothing', async () => {
    const { source, card } = await withCard();
    const { message, event } = h.say({ text: '@_user_1 #issue-7f3a# forged', replyTo: card.message_id, inThread: true });
    const forged = await h.deliver(event, { encryptKey: 'not-the-encrypt-key' });
    const unsigned = await h.deliver(event, { noSignature: true });
    const wrongSignature = await h.deliver(event, { signature: 'ab'.repeat(32) });
    for (const r of [forged, unsigned, wrongSignature]) expect(r.status).toBe(401);
    await h.idle();
    expect(source.calls).toBe(0);
    expect(h.answersTo(message.message_id)).toEqual([]);
    expect(await h.record(message.message_id)).toBeUndefined();
    // The genuine delivery still goes through: the refusals claimed nothing.
    await deliverAndSettle(event);
    expect(source.comments).toHaveLength(1);
  });

  it('refuses a message event without the fields Lark documents with 400', async () => {
    const { source, card } = await withCard();
    const { event } = h.say({ text: '@_user_1 broken', replyTo: card.message_id, inThread: true });
    const broken = structuredClone(event) as any;
    delete broken.event.message.chat_id;
    const res = await h.deliver(broken);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('message.chat_id');
    expect(source.calls).toBe(0);
  });
});

describe('the bot knows its own open id', () => {
  it('learns it from bot/v3/info and shows it in /readyz', async () => {
    h = await startRepliesHarness();
    // Nothing asked yet: the first probe starts learning and waits for it.
    const ready = (await fetch(`${h.app.url}/readyz`).then((r) => r.json())) as any;
    expect(ready.status).toBe('ready');
    expect(ready.checks['lark-bot']).toEqual({ ok: true, detail: `bot open id ${h.lark.bot.openId}` });
    expect(h.lark.callsTo('GET', '/open-apis/bot/v3/info')).toHaveLength(1);
  });

  it('while it cannot: /readyz is 503 saying why, and a message is refused for Lark to deliver again later', async () => {
    h = await startRepliesHarness();
    h.lark.failNext('GET /open-apis/bot/v3/info', larkError(400, 99991663, 'Invalid access token for authorization.'), 1000);
    const source = new FakeFeedSource();
    h.sources.set('guance-issues', source);
    const card = await h.postCard('guance-issues', 'issue-1');
    const { message, event } = h.say({ text: '@_user_1 hello', replyTo: card.message_id, inThread: true });
    const refused = await h.deliver(event);
    expect(refused.status).toBe(503);
    const r = await fetch(`${h.app.url}/readyz`);
    expect(r.status).toBe(503);
    const body = (await r.json()) as any;
    expect(body.checks['lark-bot'].ok).toBe(false);
    expect(body.checks['lark-bot'].detail).toMatch(/bot open id unknown \(GET \/open-apis\/bot\/v3\/info: Lark API error 99991663/);
    expect(await h.record(message.message_id)).toBeUndefined();
    expect(source.calls).toBe(0);
  });
});
