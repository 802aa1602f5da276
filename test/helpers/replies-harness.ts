import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createDeps, type DepsOptions } from '../../src/deps.js';
import { silentLogger } from '../../src/log.js';
import { CARD_BY_MESSAGE, FeedError, POSTED_CARDS, type FeedItem, type FeedSource, type PostedCard } from '../../src/pollers/feed.js';
import { CHAT_REPLIES, type ChatReply } from '../../src/pollers/replies/chat-replies.js';
import type { ReplyTargets } from '../../src/pollers/replies/reply-target.js';
import { ChatEmulation } from '../lark-emulator/chat.js';
import { startLarkEmulator, type LarkEmulator, type StoredMessage } from '../lark-emulator/emulator.js';
import { messageReceiveEvent, sendLarkEvent, type SendOptions } from '../lark-emulator/event-sender.js';
import { APP_ID, APP_SECRET, approvalEnv, ENCRYPT_KEY, VERIFICATION_TOKEN } from './approval-harness.js';
import { removeDir, tempDir, TOKEN, type TestApp } from './test-app.js';

export const ONCALL_CHAT = 'oc_oncall_chat';
export const OTHER_CHAT = 'oc_other_chat';
export const ALICE = { openId: 'ou_alice_0001', name: 'Alice Zhang' };
export const BOB = { openId: 'ou_bob_0002', name: 'Bob' };

/** A feed source that records the comments it is given; `fail` / `hold` make it refuse or wait. */
export class FakeFeedSource implements FeedSource {
  readonly comments: Array<{ itemId: string; text: string; author: string }> = [];
  fail?: Error;
  /** While set, addReply waits for it before answering. */
  hold?: Promise<void>;
  calls = 0;

  async list(): Promise<FeedItem[]> {
    return [];
  }

  async addReply(itemId: string, text: string, author: string): Promise<void> {
    this.calls++;
    await this.hold;
    if (this.fail) throw this.fail;
    this.comments.push({ itemId, text, author });
  }
}

/** A source with no reply API (FeedSource.addReply absent). */
export const readOnlySource: FeedSource = { list: async () => [] };

export interface RepliesHarness {
  lark: LarkEmulator;
  chat: ChatEmulation;
  app: TestApp;
  /** pollerId → its source; absent: the poller is not configured. */
  sources: Map<string, FeedSource>;
  /** pollerId → its `replies` setting (true when absent). */
  replies: Map<string, boolean>;
  /** The bot posts an issue card for an item, as the poller does, and records it. */
  postCard(pollerId: string, itemId: string, o?: { chatId?: string; title?: string; webhook?: boolean }): Promise<StoredMessage>;
  /** A person writes; `mentionBot` puts the bot's @ first (its key @_user_1). */
  say(o: { text: string; from?: { openId: string; name: string }; chatId?: string; replyTo?: string; inThread?: boolean; mentionBot?: boolean; others?: Array<{ openId: string; name: string }>; messageType?: string; content?: unknown }): {
    message: StoredMessage;
    event: ReturnType<typeof messageReceiveEvent>;
  };
  /** POSTs an event to the callback URL, signed and encrypted as Lark does. */
  deliver(event: unknown, o?: SendOptions): Promise<{ status: number; body: any }>;
  /** Texts the bot sent in reply to a message (through the reply API). */
  answersTo(messageId: string): string[];
  /** The ChatReply record of a message. */
  record(messageId: string): Promise<ChatReply | undefined>;
  idle(): Promise<void>;
  /** Stops the app (store flushed) and starts it again on the same data dir. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startRepliesHarness(o: { env?: Record<string, string | undefined> } = {}): Promise<RepliesHarness> {
  const lark = await startLarkEmulator({ apps: { [APP_ID]: APP_SECRET } });
  const chat = new ChatEmulation(lark);
  chat.users.set(ALICE.openId, ALICE.name);
  chat.users.set(BOB.openId, BOB.name);
  const sources = new Map<string, FeedSource>();
  const replies = new Map<string, boolean>();
  const targets: ReplyTargets = {
    pollerIds: () => [...sources.keys()],
    sourceFor: (id) => sources.get(id),
    repliesEnabled: (id) => replies.get(id) ?? true,
  };
  const flowsDir = await tempDir('lark-bridge-replies-flows-');
  const env = approvalEnv(lark.url, flowsDir, o.env);
  const app = await startRepliesApp(env, { replyTargets: targets });
  const h: RepliesHarness = {
    lark,
    chat,
    app,
    sources,
    replies,
    async postCard(pollerId, itemId, c = {}) {
      const deps = h.app.deps;
      const chatId = c.chatId ?? ONCALL_CHAT;
      const card = { config: { update_multi: true }, header: { title: { tag: 'plain_text', content: c.title ?? itemId } }, elements: [] };
      const { messageId } = await deps.messenger!.sendToChat(chatId, 'interactive', card);
      const now = new Date().toISOString();
      const record: PostedCard = {
        id: `${pollerId}:${itemId}`,
        pollerId,
        itemId,
        ...(c.title ? { title: c.title } : {}),
        ...(c.webhook ? {} : { chatId, messageId }),
        postedAt: now,
        updatedAt: now,
      };
      await deps.store.collection<PostedCard>(POSTED_CARDS).put(record);
      if (!c.webhook) await deps.store.keys<string>(CARD_BY_MESSAGE).set(messageId, record.id, Date.now() + 30 * 86_400_000);
      return lark.messages.get(messageId)!;
    },
    say(s) {
      const from = s.from ?? ALICE;
      const mentions = [...(s.mentionBot === false ? [] : [lark.bot]), ...(s.others ?? [])];
      const message = chat.userSays({ chatId: s.chatId ?? ONCALL_CHAT, senderOpenId: from.openId, text: s.text, replyTo: s.replyTo, inThread: s.inThread, messageType: s.messageType, content: s.content });
      return { message, event: messageReceiveEvent({ token: VERIFICATION_TOKEN, appId: APP_ID, message, senderOpenId: from.openId, mentions }) };
    },
    deliver: (event, so) => sendLarkEvent(`${h.app.url}/api/v1/lark/callback`, event, { encryptKey: ENCRYPT_KEY, ...so }),
    answersTo: (messageId) =>
      lark
        .repliesTo(messageId)
        .map((m) => JSON.parse(m.content).text as string),
    record: (messageId) => h.app.deps.store.collection<ChatReply>(CHAT_REPLIES).get(messageId),
    idle: () => h.app.deps.chatReplies!.idle(),
    async restart() {
      await h.app.stop();
      h.app = await startRepliesApp(env, { replyTargets: targets }, h.app.dataDir);
    },
    async close() {
      await h.app.stop();
      await lark.close();
      await removeDir(h.app.dataDir);
      await removeDir(flowsDir);
    },
  };
  return h;
}

/** The real app (createDeps + createApp) with @bot reply targets passed in, listening on loopback. */
export async function startRepliesApp(env: Record<string, string>, options: DepsOptions, dataDir?: string): Promise<TestApp> {
  const dir = dataDir ?? (await tempDir());
  await mkdir(join(dir, 'flows-for-test'), { recursive: true });
  const config = loadConfig({ DATA_DIR: dir, FLOWS_DIR: join(dir, 'flows-for-test'), API_TOKENS: TOKEN, LOG_LEVEL: 'silent', ...env });
  const deps = await createDeps(config, silentLogger(), undefined, options);
  const app = createApp(deps);
  await deps.chatReplies?.resume();
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const shutDown = async (flushStore: boolean) => {
    deps.flows.close();
    await deps.chatReplies?.stop();
    await deps.engine?.stop();
    await deps.worker.stop(1000);
    await new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
    if (flushStore) await deps.store.close();
    await deps.upstream.close();
  };
  return { url, dataDir: dir, deps, routes: app.routes, stop: () => shutDown(true), crash: () => shutDown(false) };
}

export const sourceDown = () => new FeedError('Guance answered 503: service unavailable', true);
