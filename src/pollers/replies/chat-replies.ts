import type { Clock } from '../../clock.js';
import { Unavailable } from '../../errors.js';
import type { Messenger } from '../../lark/messages.js';
import type { Mention, ReceivedMessage } from '../../lark/received-message.js';
import type { UserNames } from '../../lark/user-names.js';
import type { Logger } from '../../log.js';
import type { KeySpace, RecordCollection, StoredRecord } from '../../store/store.js';
import type { PostedCard } from '../feed.js';
import { answerText, type ItemRef, type Outcome } from './reply-answers.js';
import { echoKey, REPLY_MEMORY_MS, sendUuid } from './reply-echoes.js';
import { mentionsBot, readReplyRequest } from './reply-request.js';
import { findTarget, type ReplyTargets } from './reply-target.js';
import { detached } from '../../detached.js';

/** Collection of chat messages taken as @bot replies, from receipt until the bot has answered. */
export const CHAT_REPLIES = 'chat-replies';

/**
 * One message that mentioned the bot, as a small state machine:
 * received → (commenting →) answering → answered (then archived).
 * `commenting` is written before the source is called, so a crash there is never a second comment.
 */
export interface ChatReply extends StoredRecord {
  /** The message id: one record per message, however many events carried it. */
  id: string;
  chatId: string;
  senderOpenId?: string;
  messageType: string;
  content: string;
  mentions: Mention[];
  /** The bot's open id when the message was taken: its mention is removed from the text. */
  botOpenId: string;
  rootId?: string;
  parentId?: string;
  state: 'received' | 'commenting' | 'answering' | 'answered';
  item?: ItemRef;
  outcome?: Outcome;
  receivedAt: string;
  updatedAt: string;
}

export interface ChatRepliesDeps {
  replies: RecordCollection<ChatReply>;
  cards: RecordCollection<PostedCard>;
  /** CARD_BY_MESSAGE: a card's message id → its PostedCard id. */
  cardByMessage: KeySpace<string>;
  /** REPLY_ECHOES: comments added from the chat (see reply-echoes.ts). */
  echoes: KeySpace<true>;
  targets: ReplyTargets;
  bot: { known(): string | undefined; openId(): Promise<string | undefined> };
  userNames: UserNames;
  messenger: Pick<Messenger, 'replyTo'>;
  clock: Clock;
  logger: Logger;
  /** How long a source may take to add a comment. */
  sourceTimeoutMs?: number;
}

const SOURCE_TIMEOUT_MS = 20_000;
/** How often messages left by a replica that died (their lease ran out) are looked for. */
const SWEEP_EVERY_MS = 10_000;
const SWEEP_BATCH = 200;

/** Another replica took the message over (this one paused past its lease): it answers it. */
class TakenOver extends Error {}

/**
 * @bot replies: a member's message in a card's thread, or `@bot #id# text`, becomes a comment on
 * the item in its source, and the bot answers in the thread whether it worked. The way in
 * (`accept`) only records the message; the source and Lark are called after Lark got its 200.
 */
export class ChatReplies {
  private readonly running = new Map<string, Promise<void>>();
  private stopped = false;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly d: ChatRepliesDeps) {}

  /**
   * Takes a received message: ignored unless it is a person's group message that mentions the
   * bot; recorded durably and queued otherwise. While the bot's own open id is unknown it cannot
   * tell, and refuses (Lark delivers the event again later).
   */
  async accept(msg: ReceivedMessage): Promise<'queued' | 'ignored' | 'duplicate'> {
    if (msg.chatType !== 'group' || msg.senderType !== 'user' || msg.mentions.length === 0) return 'ignored';
    const botOpenId = this.d.bot.known() ?? (await this.d.bot.openId());
    if (!botOpenId) throw new Unavailable('the bot open id is not known yet (GET /open-apis/bot/v3/info failed): cannot tell whether the message mentions the bot', 60);
    if (!mentionsBot(msg.mentions, botOpenId)) return 'ignored';
    // The intake claims each message id once; a record already here is never reset to `received`.
    if (await this.d.replies.get(msg.messageId)) return 'duplicate';
    const now = new Date(this.d.clock.now()).toISOString();
    await this.d.replies.put({
      id: msg.messageId,
      chatId: msg.chatId,
      senderOpenId: msg.senderOpenId,
      messageType: msg.messageType,
      content: msg.content,
      mentions: msg.mentions,
      botOpenId,
      rootId: msg.rootId,
      parentId: msg.parentId,
      state: 'received',
      receivedAt: now,
      updatedAt: now,
    });
    this.schedule(msg.messageId);
    return 'queued';
  }

  /**
   * Picks up messages a stop or crash left unanswered, then keeps looking for those a dead
   * replica left. A message is worked by the replica holding its lease (the one that took it, or
   * the one that claimed it once that lease ran out), and written only while it holds it.
   */
  async resume(): Promise<number> {
    const taken = await this.claimStale();
    this.sweeper ??= setInterval(() => {
      if (!this.stopped) this.claimStale().catch((err: unknown) => this.d.logger.warn({ err }, '@bot replies: could not look for unanswered messages'));
    }, SWEEP_EVERY_MS);
    this.sweeper.unref();
    return taken;
  }

  private async claimStale(): Promise<number> {
    let taken = 0;
    for (;;) {
      const batch = (await this.d.replies.claimStale(SWEEP_BATCH)).filter((r) => !this.running.has(r.id));
      for (const r of batch) this.schedule(r.id);
      taken += batch.length;
      if (batch.length < SWEEP_BATCH) return taken;
    }
  }

  /** Resolves when nothing is being handled (tests, stop). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.allSettled([...this.running.values()]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.sweeper);
    await this.idle();
  }

  private schedule(id: string): void {
    if (this.stopped || this.running.has(id)) return;
    // Not in the context of the event's request: the reply outlives it (src/detached.ts).
    const run = detached(() =>
      this.advance(id)
        .catch((err: unknown) => {
          if (err instanceof TakenOver) return;
          this.d.logger.error({ err, messageId: id }, '@bot reply not answered yet; it is tried again once its lease runs out');
        })
        .finally(() => this.running.delete(id)),
    );
    this.running.set(id, run);
  }

  /** Moves one message through its states, each step written before the next begins. */
  private async advance(id: string): Promise<void> {
    let r = await this.d.replies.get(id);
    if (!r) return;
    if (r.state === 'received') r = await this.decide(r);
    if (r.state === 'commenting') r = await this.save(r, { state: 'answering', outcome: { kind: 'interrupted', item: r.item! } });
    if (r.state === 'answering') {
      await this.d.messenger.replyTo(r.id, 'text', { text: answerText(r.outcome!) }, { inThread: true, uuid: sendUuid('chat-reply-answer', r.id), chatId: r.chatId });
      r = await this.save(r, { state: 'answered' });
      if (!(await this.d.replies.archiveIfLeased(r))) throw new TakenOver();
    }
  }

  /** Reads the message, finds its item and, when all is well, adds the comment. */
  private async decide(r: ChatReply): Promise<ChatReply> {
    const req = readReplyRequest(r, r.botOpenId);
    if (req.kind === 'help') return this.save(r, { state: 'answering', outcome: { kind: 'help' } });
    if (req.kind === 'unsupported') return this.save(r, { state: 'answering', outcome: { kind: 'unsupported', messageType: req.messageType } });
    const target = await findTarget(this.d, req, r.chatId);
    if (!target.ok) {
      const { ok: _ok, ...refusal } = target;
      return this.save(r, { state: 'answering', outcome: { kind: 'refused', ...refusal } });
    }
    const { card } = target;
    const item: ItemRef = { pollerId: card.pollerId, itemId: card.itemId, ...(card.title ? { title: card.title } : {}) };
    if (!req.text) return this.save(r, { state: 'answering', item, outcome: { kind: 'empty', item } });

    const author = (r.senderOpenId && (await this.d.userNames.nameOf(r.senderOpenId))) || r.senderOpenId || 'unknown Lark user';
    r = await this.save(r, { state: 'commenting', item });
    // The source may take its time: the lease outlasts it, so no other replica takes the message meanwhile.
    await this.d.replies.renew([r.id], (this.d.sourceTimeoutMs ?? SOURCE_TIMEOUT_MS) + 30_000);
    try {
      await withTimeout(this.d.sourceTimeoutMs ?? SOURCE_TIMEOUT_MS, (signal) => target.addReply(card.itemId, req.text, author, signal));
    } catch (err) {
      this.d.logger.warn({ err, pollerId: item.pollerId, itemId: item.itemId }, '@bot reply: the source refused the comment');
      return this.save(r, { state: 'answering', outcome: { kind: 'failed', item, error: (err as Error).message || String(err) } });
    }
    await this.d.echoes.set(echoKey(item.pollerId, item.itemId, req.text), true, this.d.clock.now() + REPLY_MEMORY_MS).catch(() => undefined);
    this.d.logger.info({ pollerId: item.pollerId, itemId: item.itemId, messageId: r.id }, '@bot reply added as a comment');
    return this.save(r, { state: 'answering', outcome: { kind: 'added', item, author } });
  }

  private async save(r: ChatReply, change: Partial<ChatReply>): Promise<ChatReply> {
    const next = { ...r, ...change, updatedAt: new Date(this.d.clock.now()).toISOString() };
    if (!(await this.d.replies.putIfLeased(next))) throw new TakenOver();
    return next;
  }
}

/** Runs `work` with an abort signal that fires after `ms`; gives up at that point even if `work` ignores it. */
async function withTimeout<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  const timedOut = new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(new Error(`the source did not answer within ${Math.round(ms / 1000)} s`)), { once: true }),
  );
  timedOut.catch(() => undefined);
  return Promise.race([work(signal), timedOut]);
}
