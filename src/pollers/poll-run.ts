import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { PollerFlow } from '../flows/poller-flow-schema.js';
import type { Logger } from '../log.js';
import { NotifyError, type Notifier } from '../notify/notifier.js';
import type { KeySpace, RecordCollection } from '../store/store.js';
import type { FeedItem, FeedSource, PostedCard } from './feed.js';
import { followedCardOf, type FollowedCard } from './follow-replies.js';
import { issueMessageOf } from './issue-message.js';

/**
 * One run of a poller, read top to bottom: work out the window from the cursor, list the items
 * of that window, skip the ones already posted, post the rest oldest first, mark each only once
 * the platform accepted it, and move the cursor only over what is done.
 *
 * Exactly once rests on three things: the seen mark (written after the post, so a failed post
 * is tried again), the overlap (the next window starts before the cursor, so late or skewed
 * items are still seen) and Lark's message uuid derived from poller and item (so a crash between
 * Lark's accept and our mark does not post twice within Lark's one-hour uuid window).
 */

export interface PollRunDeps {
  source: FeedSource;
  notifier: Notifier;
  /** `${pollerId}:${itemId}` → when it was posted; expires once the item can no longer be in a window. */
  seen: KeySpace<number>;
  cards: RecordCollection<PostedCard>;
  cardByMessage: KeySpace<string>;
  clock: Clock;
  logger: Logger;
  /** How long a card can be found from its message (for replies in its thread). */
  cardRetentionMs: number;
  /** Set when the poller follows its cards' comments (follow-replies.ts): each card posted is added. */
  followed?: RecordCollection<FollowedCard>;
}

export interface PostedItem {
  itemId: string;
  title: string;
  messageId?: string;
}

export interface FailedItem {
  itemId: string;
  title: string;
  error: string;
  retryable: boolean;
}

export interface RunOutcome {
  window: { since: number; until: number };
  /** Distinct items the source listed. */
  listed: number;
  /** Listed, but created before the window (a feed that ignores the cursor). */
  outOfWindow: number;
  alreadyPosted: number;
  posted: PostedItem[];
  failed: FailedItem[];
  /** Left for the next run: over maxPerRun, the platform down, or the service stopping. */
  deferred: number;
  /** The new cursor: everything created before it is done. */
  cursor: number;
}

/** A store write failed after a post: the run stops (the item is posted again next run, deduped by Lark). */
export class RecordFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordFailed';
  }
}

const HOUR = 3_600_000;

export const seenKey = (pollerId: string, itemId: string) => `${pollerId}:${itemId}`;

/** Lark's message uuid for an item (at most 50 characters): the same for every try of the same item. */
export function dedupKeyOf(pollerId: string, itemId: string): string {
  return `lbp-${createHash('sha256').update(`${pollerId}\n${itemId}`).digest('hex').slice(0, 40)}`;
}

/** The window a run asks for: from the cursor less the overlap, never further back than maxCatchUp. */
export function windowFor(flow: PollerFlow, cursor: number | undefined, now: number): { since: number; until: number } {
  const start = (cursor ?? now) - flow.overlapSec * 1000;
  const since = Math.min(Math.max(start, now - flow.maxCatchUpSec * 1000), now);
  return { since, until: now };
}

export async function pollOnce(flow: PollerFlow, cursor: number | undefined, deps: PollRunDeps, signal?: AbortSignal): Promise<RunOutcome> {
  const window = windowFor(flow, cursor, deps.clock.now());
  const listed = distinctOldestFirst(await deps.source.list(window.since, window.until, signal));
  const inWindow = listed.filter((i) => i.createdAt >= window.since);

  const fresh: FeedItem[] = [];
  let alreadyPosted = 0;
  for (const item of inWindow) {
    if ((await deps.seen.get(seenKey(flow.id, item.id))) !== undefined) alreadyPosted++;
    else fresh.push(item);
  }

  const posted: PostedItem[] = [];
  const failed: FailedItem[] = [];
  const pending: FeedItem[] = [];
  let platformDown = false;
  for (const item of fresh) {
    if (platformDown || signal?.aborted || posted.length >= flow.maxPerRun) {
      pending.push(item);
      continue;
    }
    let accepted: { messageId?: string; chatId?: string };
    const message = issueMessageOf(item, flow);
    try {
      accepted = await deps.notifier.post(message, dedupKeyOf(flow.id, item.id));
    } catch (err) {
      const e = err instanceof NotifyError ? err : new NotifyError((err as Error)?.message ?? String(err), true);
      failed.push({ itemId: item.id, title: item.title, error: e.message, retryable: e.retryable });
      pending.push(item);
      // Rate limited, 5xx or no answer: the rest waits for the next run instead of hammering.
      if (e.retryable) platformDown = true;
      continue;
    }
    await markPosted(flow, item, message.title, accepted, deps, window.until);
    posted.push({ itemId: item.id, title: item.title, ...(accepted.messageId ? { messageId: accepted.messageId } : {}) });
  }

  // The cursor stops at the oldest item not done, so the next window still holds it.
  const cursorNow = pending.reduce((min, i) => Math.min(min, i.createdAt), window.until);
  return {
    window,
    listed: listed.length,
    outOfWindow: listed.length - inWindow.length,
    alreadyPosted,
    posted,
    failed,
    deferred: pending.length - failed.length,
    cursor: Math.max(cursorNow, window.since),
  };
}

/** One entry per id (the earliest), oldest first; ties in id order, so runs agree on the order. */
function distinctOldestFirst(items: FeedItem[]): FeedItem[] {
  const byId = new Map<string, FeedItem>();
  for (const item of items) {
    const seen = byId.get(item.id);
    if (!seen || item.createdAt < seen.createdAt) byId.set(item.id, item);
  }
  return [...byId.values()].sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The card record first (replies find their item through it), then the message id and the seen
 * mark in one write. A crash in between leaves the item unmarked: it is posted again next run,
 * with the same Lark uuid.
 */
async function markPosted(flow: PollerFlow, item: FeedItem, title: string, accepted: { messageId?: string; chatId?: string }, deps: PollRunDeps, until: number): Promise<void> {
  const now = deps.clock.now();
  const at = new Date(now).toISOString();
  const card: PostedCard = {
    id: seenKey(flow.id, item.id),
    pollerId: flow.id,
    itemId: item.id,
    // As the card shows it: @bot answers name the item by it.
    title,
    ...(accepted.chatId ? { chatId: accepted.chatId } : {}),
    ...(accepted.messageId ? { messageId: accepted.messageId } : {}),
    postedAt: at,
    updatedAt: at,
  };
  // An item stays in some window until createdAt + maxCatchUp (later for one stamped in the future).
  const seenUntil = Math.max(item.createdAt, until, now) + (flow.maxCatchUpSec + flow.overlapSec) * 1000 + HOUR;
  try {
    // Cards are history from the start: written straight to the archive (get() finds them there).
    await deps.cards.archive(card);
    await Promise.all([
      accepted.messageId ? deps.cardByMessage.set(accepted.messageId, card.id, now + deps.cardRetentionMs) : undefined,
      deps.seen.set(seenKey(flow.id, item.id), now, seenUntil),
      accepted.messageId && deps.followed ? deps.followed.put(followedCardOf(flow, item.id, now)) : undefined,
    ]);
  } catch (err) {
    throw new RecordFailed(`item ${item.id} was posted but could not be recorded: ${(err as Error).message}`);
  }
}
