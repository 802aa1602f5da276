import { afterEach, describe, expect, it } from 'vitest';
import { BOT_INFO_RETRY_MS, BotIdentity } from '../src/lark/bot-info.js';
import { readReceivedMessage } from '../src/lark/received-message.js';
import { silentLogger } from '../src/log.js';
import type { PostedCard } from '../src/pollers/feed.js';
import { REPLY_ECHOES } from '../src/pollers/replies/reply-echoes.js';
import { postNewReplies, REPLY_REMINDERS, type ReminderMark } from '../src/pollers/replies/reply-reminders.js';
import { readReplyRequest } from '../src/pollers/replies/reply-request.js';
import { openJournalStore } from '../src/store/open-store.js';
import type { Store } from '../src/store/store.js';
import { manualClock } from './helpers/lark-intake-app.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const BOT = 'ou_the_bot';
const botMention = { key: '@_user_1', openId: BOT, name: 'bridge' };
const text = (t: string, extra: object = {}) => ({ messageType: 'text', content: JSON.stringify({ text: t }), mentions: [botMention], ...extra });

describe('reading a message that mentions the bot', () => {
  it('takes #id# at the start, after the mention; the rest of the text trimmed', () => {
    expect(readReplyRequest(text('@_user_1 #issue-1#   done  '), BOT)).toEqual({ kind: 'comment', itemId: 'issue-1', text: 'done', repliesTo: [] });
    expect(readReplyRequest(text('@_user_1 # 告警 42 # 已处理'), BOT)).toEqual({ kind: 'comment', itemId: '告警 42', text: '已处理', repliesTo: [] });
    // Not at the start: plain text, and outside a thread that is a request for help.
    expect(readReplyRequest(text('@_user_1 see #issue-1# later'), BOT)).toEqual({ kind: 'help' });
    expect(readReplyRequest(text('@_user_1 ## nothing'), BOT)).toEqual({ kind: 'help' });
  });

  it('in a thread: the comment is for the thread root (then the parent); #id# still wins', () => {
    expect(readReplyRequest(text('@_user_1 on it', { rootId: 'om_card', parentId: 'om_card' }), BOT)).toEqual({ kind: 'comment', text: 'on it', repliesTo: ['om_card'] });
    expect(readReplyRequest(text('@_user_1 #other# on it', { rootId: 'om_card', parentId: 'om_mid' }), BOT)).toEqual({ kind: 'comment', itemId: 'other', text: 'on it', repliesTo: ['om_card', 'om_mid'] });
  });

  it("removes the bot's mention and names other people; @_user_1 does not eat @_user_12", () => {
    const mentions = [botMention, ...Array.from({ length: 11 }, (_, i) => ({ key: `@_user_${i + 2}`, openId: `ou_${i + 2}`, name: `P${i + 2}` }))];
    const req = readReplyRequest({ messageType: 'text', content: JSON.stringify({ text: '@_user_1 #x# ask @_user_12 and @_user_2' }), mentions }, BOT);
    expect(req).toEqual({ kind: 'comment', itemId: 'x', text: 'ask @P12 and @P2', repliesTo: [] });
  });

  it('reads post content (plain or wrapped in its locale); other types are unsupported', () => {
    const post = { title: 'Update', content: [[{ tag: 'at', user_id: '@_user_1', user_name: 'bridge' }, { tag: 'text', text: ' #i# line 1' }], [{ tag: 'a', text: 'link', href: 'https://x.test' }]] };
    expect(readReplyRequest({ messageType: 'post', content: JSON.stringify(post), mentions: [botMention] }, BOT)).toEqual({ kind: 'help' }); // the title comes first
    const untitled = { ...post, title: '' };
    expect(readReplyRequest({ messageType: 'post', content: JSON.stringify({ zh_cn: untitled }), mentions: [botMention] }, BOT)).toEqual({ kind: 'comment', itemId: 'i', text: 'line 1\nlink', repliesTo: [] });
    expect(readReplyRequest({ messageType: 'image', content: '{"image_key":"img"}', mentions: [botMention] }, BOT)).toEqual({ kind: 'unsupported', messageType: 'image' });
    expect(readReplyRequest({ messageType: 'text', content: 'not json', mentions: [botMention] }, BOT)).toEqual({ kind: 'unsupported', messageType: 'text' });
  });

  it('reads the flattened event; a missing field is bad input that names it', () => {
    const event = {
      event_id: 'e1',
      sender: { sender_id: { open_id: 'ou_a' }, sender_type: 'user' },
      message: { message_id: 'om_1', root_id: '', parent_id: '', chat_id: 'oc_1', chat_type: 'group', message_type: 'text', content: '{"text":"hi"}', mentions: [{ key: '@_user_1', id: { open_id: BOT }, name: 'b' }] },
    };
    expect(readReceivedMessage(event)).toMatchObject({ eventId: 'e1', messageId: 'om_1', rootId: undefined, chatId: 'oc_1', senderOpenId: 'ou_a', mentions: [{ key: '@_user_1', openId: BOT, name: 'b' }] });
    expect(() => readReceivedMessage({ ...event, message: { ...event.message, message_id: undefined } })).toThrow(/message\.message_id/);
  });
});

describe('the bot identity', () => {
  it('tries again only when a need comes a minute after a failure, and joins one attempt', async () => {
    const clock = manualClock(1_000_000);
    let calls = 0;
    let fail = true;
    const bot = new BotIdentity(
      async () => {
        calls++;
        if (fail) throw new Error('Lark API error 99991663: Invalid access token');
        return { openId: BOT, name: 'bridge' };
      },
      clock,
      silentLogger(),
    );
    expect(await Promise.all([bot.openId(), bot.openId()])).toEqual([undefined, undefined]);
    expect(calls).toBe(1);
    const check = bot.readiness();
    expect(await check.check()).toEqual({ ok: false, detail: 'bot open id unknown (GET /open-apis/bot/v3/info: Lark API error 99991663: Invalid access token); @bot replies are ignored until it is learned' });
    fail = false;
    clock.advance(BOT_INFO_RETRY_MS - 1);
    expect(await bot.openId()).toBeUndefined();
    expect(calls).toBe(1);
    clock.advance(1);
    expect(await bot.openId()).toBe(BOT);
    expect(await check.check()).toEqual({ ok: true, detail: `bot open id ${BOT}` });
    expect(calls).toBe(2);
  });
});

describe('a reminder claim left by a crash', () => {
  let store: Store | undefined;
  let dir = '';
  afterEach(async () => {
    await store?.close();
    await removeDir(dir);
  });

  it('is taken over after five minutes, not before', async () => {
    dir = await tempDir('reply-reminder-');
    const clock = manualClock(10_000_000);
    store = await openJournalStore({ dir, clock });
    const cards = store.collection<PostedCard>('poller-cards');
    await cards.put({ id: 'p:i', pollerId: 'p', itemId: 'i', chatId: 'oc_1', messageId: 'om_card', postedAt: '', updatedAt: '' });
    const sent: string[] = [];
    const d = {
      cards,
      reminders: store.keys<ReminderMark>(REPLY_REMINDERS),
      echoes: store.keys<true>(REPLY_ECHOES),
      messenger: { replyTo: async (_id: string, _t: string, content: unknown) => (sent.push((content as { text: string }).text), { messageId: 'om_r' }) },
      clock,
      logger: silentLogger(),
    };
    // The crash: claimed, never marked posted.
    await d.reminders.set(JSON.stringify(['p', 'i', 'r1']), { state: 'posting', at: clock.now() }, clock.now() + 86_400_000);
    const replies = [{ id: 'r1', itemId: 'i', author: 'a', text: 't', createdAt: 1 }];
    clock.advance(4 * 60_000);
    expect(await postNewReplies(d, 'p', 'i', replies)).toEqual({ posted: 0, skipped: 1 });
    clock.advance(2 * 60_000);
    expect(await postNewReplies(d, 'p', 'i', replies)).toEqual({ posted: 1, skipped: 0 });
    expect(await postNewReplies(d, 'p', 'i', replies)).toEqual({ posted: 0, skipped: 1 });
    expect(sent).toEqual(['💬 New comment by a: t']);
  });
});
