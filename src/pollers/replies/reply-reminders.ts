import type { Clock } from '../../clock.js';
import type { Messenger } from '../../lark/messages.js';
import type { Logger } from '../../log.js';
import type { KeySpace, RecordCollection } from '../../store/store.js';
import type { FeedReply, PostedCard } from '../feed.js';
import { echoKey, REPLY_MEMORY_MS, sendUuid } from './reply-echoes.js';

/** KeySpace of replies already posted into a card's thread: a claim per (poller, item, reply id). */
export const REPLY_REMINDERS = 'poller-reply-reminders';

/** A claimed reminder: `posting` until Lark accepted it, then `posted`. */
export type ReminderMark = { state: 'posting' | 'posted'; at: number };

export interface ReminderDeps {
  cards: RecordCollection<PostedCard>;
  reminders: KeySpace<ReminderMark>;
  /** REPLY_ECHOES: comments added from the chat, not echoed back. */
  echoes: KeySpace<true>;
  messenger: Pick<Messenger, 'replyTo'>;
  clock: Clock;
  logger: Logger;
}

export interface ReminderResult {
  /** Replies posted into the card's thread by this call. */
  posted: number;
  /** Replies seen before, or added from this chat. */
  skipped: number;
}

// A claim still `posting` this long after it was taken was left by a crash: the next run takes it
// over (Lark drops the repeat by its uuid within the hour, should the first post have gone out).
const POSTING_LEASE_MS = 5 * 60_000;

async function claim(d: ReminderDeps, key: string, now: number): Promise<boolean> {
  if (await d.reminders.claim(key, { state: 'posting', at: now }, now + REPLY_MEMORY_MS)) return true;
  const mark = await d.reminders.get(key);
  if (mark?.state !== 'posting' || now - mark.at <= POSTING_LEASE_MS) return false;
  await d.reminders.set(key, { state: 'posting', at: now }, now + REPLY_MEMORY_MS);
  return true;
}

/** What the thread shows for a new comment in the source. */
export function reminderText(r: FeedReply): string {
  return `💬 New comment by ${r.author || 'someone'}: ${r.text}`;
}

/**
 * The "new reply" reminder: posts each of an item's new comments (from its source's replies feed)
 * into the thread of the item's card, once each, oldest first. Each reply id is claimed durably
 * before it is posted and kept for 30 days, so a reply listed again by a later run — or by an
 * overlapping one — is not posted again; a post Lark refuses gives the claim back and stops,
 * and the rest are tried on the next run (the error is thrown for the run to record).
 * The poller run calls it after listing its items, for each item whose replies it asked for.
 */
export async function postNewReplies(d: ReminderDeps, pollerId: string, itemId: string, replies: readonly FeedReply[]): Promise<ReminderResult> {
  const result: ReminderResult = { posted: 0, skipped: 0 };
  if (!replies.length) return result;
  const card = await d.cards.get(`${pollerId}:${itemId}`);
  if (!card?.messageId || card.pollerId !== pollerId || card.itemId !== itemId) {
    // Posted through a webhook (no thread to post in), or not posted (yet): nothing to remind in.
    result.skipped = replies.length;
    return result;
  }
  const ordered = [...replies].sort((a, b) => a.createdAt - b.createdAt);
  for (const reply of ordered) {
    const key = JSON.stringify([pollerId, itemId, reply.id]);
    const now = d.clock.now();
    if (reply.itemId !== itemId || (await d.echoes.get(echoKey(pollerId, itemId, reply.text))) || !(await claim(d, key, now))) {
      result.skipped++;
      continue;
    }
    try {
      await d.messenger.replyTo(card.messageId, 'text', { text: reminderText(reply) }, { inThread: true, uuid: sendUuid('reply-reminder', key), chatId: card.chatId });
    } catch (err) {
      await d.reminders.delete(key).catch(() => undefined);
      d.logger.warn({ err, pollerId, itemId, replyId: reply.id }, 'new-reply reminder not posted; tried again next run');
      throw err;
    }
    await d.reminders.set(key, { state: 'posted', at: now }, now + REPLY_MEMORY_MS);
    result.posted++;
  }
  return result;
}
