import { afterEach, describe, expect, it } from 'vitest';
import { ChatEmulation } from './lark-emulator/chat.js';
import { messageReceiveEvent, sendLarkEvent } from './lark-emulator/event-sender.js';
import type { StoredMessage } from './lark-emulator/emulator.js';
import { guanceFlow, ONCALL_CHAT, POLLER_APP_ID, startPollerHarness, TestClock, type PollerHarness } from './helpers/poller-harness.js';

/**
 * The two halves of issue 10 against each other, both real: the cards the pollers post (and the
 * records they keep of them) are what the @bot replies read. No fake reply targets: the poller
 * flows in force, their sources and their `replies` settings, as src/deps.ts wires them.
 */
const ENCRYPT_KEY = 'agree-encrypt-key-0123';
const VERIFICATION_TOKEN = 'agree-verification-token';
const ALICE = { openId: 'ou_alice_agree', name: 'Alice Zhang' };

let h: PollerHarness;
afterEach(async () => h?.close());

async function start(customBots?: Record<string, { chatId: string }>) {
  const clock = new TestClock();
  h = await startPollerHarness({ clock, customBots, env: { LARK_ENCRYPT_KEY: ENCRYPT_KEY, LARK_VERIFICATION_TOKEN: VERIFICATION_TOKEN } });
  const chat = new ChatEmulation(h.lark);
  chat.users.set(ALICE.openId, ALICE.name);
  return { clock, chat };
}

/** Alice writes (mentioning the bot first), and Lark delivers the event, signed and encrypted. */
async function aliceSays(chat: ChatEmulation, text: string, replyTo?: string): Promise<StoredMessage> {
  const message = chat.userSays({ chatId: ONCALL_CHAT, senderOpenId: ALICE.openId, text, replyTo, inThread: Boolean(replyTo) });
  const event = messageReceiveEvent({ token: VERIFICATION_TOKEN, appId: POLLER_APP_ID, message, senderOpenId: ALICE.openId, mentions: [h.lark.bot] });
  const answer = await sendLarkEvent(`${h.app.url}/api/v1/lark/callback`, event, { encryptKey: ENCRYPT_KEY });
  expect(answer.status).toBe(200);
  await h.app.deps.chatReplies!.idle();
  return message;
}

const answersTo = (m: StoredMessage) => h.lark.repliesTo(m.message_id).map((r) => JSON.parse(r.content).text as string);
const sec = (ms: number) => Math.floor(ms / 1000);

describe('pollers and @bot replies agree', () => {
  it("a card the poller posted is answered by its title, and the comment reaches Guance naming the author", async () => {
    const { clock, chat } = await start();
    await h.writeFlow(guanceFlow(h.guance.url));
    const issue = h.guance.addIssue({ name: 'Disk full on db-1', createAt: sec(clock.now()) - 5 });
    const run = await h.runNow();
    const cardId = run.json.posted[0].messageId as string;

    const inThread = await aliceSays(chat, '@_user_1 cleaner restarted', cardId);
    expect(answersTo(inThread)).toEqual([`✅ Comment added to "Disk full on db-1" (#${issue.uuid}#) as Alice Zhang.`]);
    const byId = await aliceSays(chat, `@_user_1 #${issue.uuid}# watching it`);
    expect(answersTo(byId)).toEqual([`✅ Comment added to "Disk full on db-1" (#${issue.uuid}#) as Alice Zhang.`]);
    expect(h.guance.replies).toEqual([
      { issueUUID: issue.uuid, content: 'Alice Zhang (Lark): cleaner restarted', extend: {} },
      { issueUUID: issue.uuid, content: 'Alice Zhang (Lark): watching it', extend: {} },
    ]);
  });

  it('a poller with "replies": false answers so, in the thread and for #id#, and adds nothing', async () => {
    const { clock, chat } = await start();
    await h.writeFlow(guanceFlow(h.guance.url, { replies: false }));
    const issue = h.guance.addIssue({ name: 'CPU high', createAt: sec(clock.now()) - 5 });
    const cardId = (await h.runNow()).json.posted[0].messageId as string;
    const refusal = `❌ Replies are turned off for guance-issues ("replies": false in its flow file): the comment was not added to #${issue.uuid}#.`;
    expect(answersTo(await aliceSays(chat, '@_user_1 on it', cardId))).toEqual([refusal]);
    expect(answersTo(await aliceSays(chat, `@_user_1 #${issue.uuid}# on it`))).toEqual([refusal]);
    expect(h.guance.replies).toEqual([]);
  });

  it('a card posted through a group webhook answers that it takes no replies', async () => {
    const { clock, chat } = await start({ 'oncall-hook': { chatId: ONCALL_CHAT } });
    await h.writeFlow(guanceFlow(h.guance.url, { notify: { webhook: `${h.lark.url}/open-apis/bot/v2/hook/oncall-hook` }, replies: false }));
    const issue = h.guance.addIssue({ name: 'Queue stuck', createAt: sec(clock.now()) - 5 });
    expect((await h.runNow()).json.posted).toHaveLength(1);
    expect(h.cardsIn()).toHaveLength(1);
    const m = await aliceSays(chat, `@_user_1 #${issue.uuid}# ack`);
    expect(answersTo(m)).toEqual([`❌ Issue #${issue.uuid}# was posted through a group webhook, not by this bot: it takes no replies from the chat.`]);
    expect(h.guance.replies).toEqual([]);
  });

  it('a removed poller answers that it is no longer configured', async () => {
    const { clock, chat } = await start();
    await h.writeFlow(guanceFlow(h.guance.url));
    const issue = h.guance.addIssue({ name: 'Mem leak', createAt: sec(clock.now()) - 5 });
    const cardId = (await h.runNow()).json.posted[0].messageId as string;
    await h.removeFlow('guance-issues.json');
    const m = await aliceSays(chat, '@_user_1 still there?', cardId);
    expect(answersTo(m)).toEqual([`❌ The poller that posted #${issue.uuid}# (guance-issues) is no longer configured: the comment was not added.`]);
  });
});
