import { afterEach, describe, expect, it } from 'vitest';
import { intakeOptions } from '../src/app.js';
import { createEventDispatcher, startLongConnection } from '../src/lark/event-intake.js';
import type { ReplyTargets } from '../src/pollers/replies/reply-target.js';
import { CARD_BY_MESSAGE, POSTED_CARDS, type PostedCard } from '../src/pollers/feed.js';
import { ChatEmulation } from './lark-emulator/chat.js';
import { startLarkEmulator, type LarkEmulator } from './lark-emulator/emulator.js';
import { messageReceiveEvent } from './lark-emulator/event-sender.js';
import { LongConnection } from './lark-emulator/long-connection.js';
import { APP_ID, APP_SECRET, approvalEnv, VERIFICATION_TOKEN } from './helpers/approval-harness.js';
import { ALICE, FakeFeedSource, ONCALL_CHAT, startRepliesApp } from './helpers/replies-harness.js';
import { removeDir, tempDir, waitFor, type TestApp } from './helpers/test-app.js';

let lark: LarkEmulator | undefined;
let lc: LongConnection | undefined;
let app: TestApp | undefined;
let connection: { close(): void } | undefined;
const dirs: string[] = [];

afterEach(async () => {
  connection?.close();
  lc?.close();
  await app?.stop();
  await lark?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

describe('LARK_EVENT_MODE=ws', () => {
  it('takes an @bot reply over the long connection through the same dispatcher and dedup', async () => {
    lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
    lc = new LongConnection(lark, { [APP_ID]: APP_SECRET });
    const chat = new ChatEmulation(lark);
    chat.users.set(ALICE.openId, ALICE.name);
    const source = new FakeFeedSource();
    const targets: ReplyTargets = { pollerIds: () => ['guance-issues'], sourceFor: () => source, repliesEnabled: () => true };
    const flowsDir = await tempDir('lark-bridge-ws-replies-');
    dirs.push(flowsDir);
    app = await startRepliesApp(approvalEnv(lark.url, flowsDir, { LARK_EVENT_MODE: 'ws', LARK_ENCRYPT_KEY: undefined }), { replyTargets: targets });
    dirs.push(app.dataDir);
    const deps = app.deps;
    // What main.ts does in ws mode: the intake's dispatcher, fed by the SDK's WSClient.
    connection = startLongConnection(APP_ID, APP_SECRET, lark.url, createEventDispatcher(intakeOptions(deps.config, deps)), deps.logger);
    await waitFor(() => lc!.clients.size === 1, 15_000);

    const { messageId } = await deps.messenger!.sendToChat(ONCALL_CHAT, 'interactive', { config: { update_multi: true }, elements: [] });
    const card: PostedCard = { id: 'guance-issues:issue-ws', pollerId: 'guance-issues', itemId: 'issue-ws', title: 'CPU high', chatId: ONCALL_CHAT, messageId, postedAt: '', updatedAt: '' };
    await deps.store.collection<PostedCard>(POSTED_CARDS).put(card);
    await deps.store.keys<string>(CARD_BY_MESSAGE).set(messageId, card.id, Date.now() + 86_400_000);

    const message = chat.userSays({ chatId: ONCALL_CHAT, senderOpenId: ALICE.openId, text: '@_user_1 scaled out', replyTo: messageId, inThread: true });
    const event = messageReceiveEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, message, senderOpenId: ALICE.openId, mentions: [lark.bot] });
    expect(await lc.pushEvent(event)).toMatchObject({ code: 200 });
    await waitFor(() => lark!.repliesTo(message.message_id).length === 1, 10_000);
    expect(source.comments).toEqual([{ itemId: 'issue-ws', text: 'scaled out', author: ALICE.name }]);
    expect(JSON.parse(lark.repliesTo(message.message_id)[0]!.content).text).toBe(`✅ Comment added to "CPU high" (#issue-ws#) as ${ALICE.name}.`);

    // Redelivered over the connection under a new event id: acknowledged, not commented again.
    expect(await lc.pushEvent({ ...event, header: { ...event.header, event_id: 'ws-redelivery' } })).toMatchObject({ code: 200 });
    await deps.chatReplies!.idle();
    expect(source.comments).toHaveLength(1);
    expect(lark.repliesTo(message.message_id)).toHaveLength(1);
  });
});
