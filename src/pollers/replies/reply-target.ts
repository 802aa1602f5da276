import type { KeySpace, RecordCollection } from '../../store/store.js';
import type { FeedSource, PostedCard } from '../feed.js';

/** What the pollers half tells the replies half: which pollers exist, their sources, whether they take replies. */
export interface ReplyTargets {
  /** Poller flows loaded now: a `#id#` is looked up among their cards. */
  pollerIds(): string[];
  sourceFor(pollerId: string): FeedSource | undefined;
  /** The poller flow's `replies` setting. */
  repliesEnabled(pollerId: string): boolean;
}

/** A deployment with no poller flows: every card and id is unknown (and answered so). */
export const NO_POLLERS: ReplyTargets = { pollerIds: () => [], sourceFor: () => undefined, repliesEnabled: () => false };

export type Refusal =
  /** The message replies in a thread that is not under one of our cards. */
  | { reason: 'not_a_card' }
  /** No poller posted an item with this id (to any chat). */
  | { reason: 'unknown_id'; itemId: string }
  /** The card is in another chat: only its members may comment through it. */
  | { reason: 'other_chat'; itemId: string }
  /** The item was posted through a group webhook, not by the bot: there is no thread to answer in. */
  | { reason: 'webhook_card'; itemId: string }
  | { reason: 'ambiguous'; itemId: string; pollerIds: string[] }
  | { reason: 'poller_gone'; itemId: string; pollerId: string }
  | { reason: 'replies_off'; itemId: string; pollerId: string }
  | { reason: 'no_reply_api'; itemId: string; pollerId: string };

export type Target = { ok: true; card: PostedCard; addReply: NonNullable<FeedSource['addReply']> } | ({ ok: false } & Refusal);

export interface TargetLookup {
  cards: RecordCollection<PostedCard>;
  cardByMessage: KeySpace<string>;
  targets: ReplyTargets;
}

/** The card a reply in a thread answers to: the thread's root first, then the message replied to. */
async function cardInThread(l: TargetLookup, repliesTo: string[]): Promise<PostedCard | undefined> {
  for (const messageId of repliesTo) {
    const cardId = await l.cardByMessage.get(messageId);
    const card = cardId ? await l.cards.get(cardId) : undefined;
    if (card) return card;
  }
  return undefined;
}

/** The card of `#itemId#` in this chat, or why there is none. */
async function cardById(l: TargetLookup, itemId: string, chatId: string): Promise<PostedCard | Refusal> {
  const found: PostedCard[] = [];
  for (const pollerId of l.targets.pollerIds()) {
    const card = await l.cards.get(`${pollerId}:${itemId}`);
    // The id is built from two parts: check both, so "a:b" + "c" never answers for "a" + "b:c".
    if (card && card.pollerId === pollerId && card.itemId === itemId) found.push(card);
  }
  const here = found.filter((c) => c.chatId === chatId);
  if (here.length === 1) return here[0]!;
  if (here.length > 1) return { reason: 'ambiguous', itemId, pollerIds: here.map((c) => c.pollerId) };
  if (found.some((c) => c.chatId)) return { reason: 'other_chat', itemId };
  if (found.length) return { reason: 'webhook_card', itemId };
  return { reason: 'unknown_id', itemId };
}

/** Finds the item a comment is for and checks that this chat may comment on it through its poller. */
export async function findTarget(l: TargetLookup, req: { itemId?: string; repliesTo: string[] }, chatId: string): Promise<Target> {
  let card: PostedCard;
  if (req.itemId !== undefined) {
    const hit = await cardById(l, req.itemId, chatId);
    if ('reason' in hit) return { ok: false, ...hit };
    card = hit;
  } else {
    const hit = await cardInThread(l, req.repliesTo);
    if (!hit) return { ok: false, reason: 'not_a_card' };
    card = hit;
  }
  const { itemId, pollerId } = card;
  if (card.chatId !== chatId) return { ok: false, reason: 'other_chat', itemId };
  const source = l.targets.sourceFor(pollerId);
  if (!source) return { ok: false, reason: 'poller_gone', itemId, pollerId };
  if (!l.targets.repliesEnabled(pollerId)) return { ok: false, reason: 'replies_off', itemId, pollerId };
  if (!source.addReply) return { ok: false, reason: 'no_reply_api', itemId, pollerId };
  return { ok: true, card, addReply: source.addReply.bind(source) };
}
