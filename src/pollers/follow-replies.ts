import type { Clock } from '../clock.js';
import type { PollerFlow } from '../flows/poller-flow-schema.js';
import type { RecordCollection, StoredRecord } from '../store/store.js';
import { FeedError, type FeedSource } from './feed.js';
import type { PostNewReplies } from './replies/replies-from-store.js';

/**
 * The "new reply" reminder, seen from the poller run: after posting its items, a run asks the
 * source's replies feed for the new comments of its recent cards and hands them to the reminder
 * (replies/reply-reminders.ts), which posts each once into the card's thread.
 *
 * Bounded twice: a card is followed for `followRepliesSec` after it was posted, and a run checks
 * at most `maxReplyChecksPerRun` cards, those checked longest ago first, so with more cards than
 * that every card still gets its turn.
 */

/** Live collection: one record per card whose comments are followed; removed once past its horizon. */
export const FOLLOWED_CARDS = 'poller-followed-cards';

export interface FollowedCard extends StoredRecord {
  /** `${pollerId}:${itemId}`, as the PostedCard. */
  id: string;
  pollerId: string;
  itemId: string;
  /** When the card was posted (ms). */
  postedAt: number;
  /** Followed until then (ms): postedAt + followRepliesSec when it was posted. */
  until: number;
  updatedAt: string;
}

export interface ReplyCheckDeps {
  source: FeedSource;
  followed: RecordCollection<FollowedCard>;
  postNewReplies: PostNewReplies;
  /**
   * Card id → when its comments were last listed (ms), in the order they were listed (a card
   * listed again moves to the end). In memory: a restart starts the rotation afresh.
   */
  lastChecked: Map<string, number>;
  clock: Clock;
}

export interface RepliesOutcome {
  /** Cards whose comments were listed. */
  checked: number;
  /** Comments posted into card threads. */
  posted: number;
  /** Followed cards left for a later run (over maxReplyChecksPerRun, or a failure stopped the round). */
  left: number;
  failed: Array<{ itemId: string; error: string }>;
}

/** True when a run of this poller follows comments: a replies feed, and cards with a thread to post in. */
export function followsReplies(flow: PollerFlow, source: FeedSource): boolean {
  return flow.followRepliesSec > 0 && flow.notify.type === 'lark-app' && typeof source.listReplies === 'function';
}

/** The record written with a posted card, when its comments are to be followed. */
export function followedCardOf(flow: PollerFlow, itemId: string, now: number): FollowedCard {
  return {
    id: `${flow.id}:${itemId}`,
    pollerId: flow.id,
    itemId,
    postedAt: now,
    until: now + flow.followRepliesSec * 1000,
    updatedAt: new Date(now).toISOString(),
  };
}

/**
 * Lists the new comments of this poller's followed cards and posts them. A source that is down
 * (retryable) or a Lark post that fails ends the round: the rest waits for the next run. A card
 * whose comments cannot be read for good (404, bad shape) is reported and the others go on.
 */
export async function checkNewReplies(flow: PollerFlow, d: ReplyCheckDeps, signal?: AbortSignal): Promise<RepliesOutcome> {
  const now = d.clock.now();
  const outcome: RepliesOutcome = { checked: 0, posted: 0, left: 0, failed: [] };
  const mine: FollowedCard[] = [];
  for (const card of await d.followed.live()) {
    // Its own horizon when it was posted, or this flow's, whichever ends first.
    const ends = card.pollerId === flow.id ? Math.min(card.until, card.postedAt + flow.followRepliesSec * 1000) : card.until;
    if (ends <= now) {
      await d.followed.remove(card.id);
      d.lastChecked.delete(card.id);
    } else if (card.pollerId === flow.id) {
      mine.push(card);
    }
  }
  // Cards never listed first (oldest first), then those listed longest ago.
  const place = new Map([...d.lastChecked.keys()].map((id, i) => [id, i]));
  const turn = (c: FollowedCard) => place.get(c.id) ?? -1;
  mine.sort((a, b) => turn(a) - turn(b) || a.postedAt - b.postedAt || (a.id < b.id ? -1 : 1));
  const due = mine.slice(0, flow.maxReplyChecksPerRun);
  outcome.left = mine.length - due.length;

  for (const [i, card] of due.entries()) {
    if (signal?.aborted) {
      outcome.left += due.length - i;
      break;
    }
    const startedAt = d.clock.now();
    // The overlap covers comments stamped late; the reminder's claims keep each one to one post.
    const since = (d.lastChecked.get(card.id) ?? card.postedAt) - flow.overlapSec * 1000;
    try {
      const replies = await d.source.listReplies!(card.itemId, since, signal);
      outcome.checked++;
      const result = await d.postNewReplies(flow.id, card.itemId, replies);
      outcome.posted += result.posted;
      checked(d, card.id, startedAt);
    } catch (err) {
      const error = (err as Error)?.message ?? String(err);
      outcome.failed.push({ itemId: card.itemId, error });
      const feedFailedForGood = err instanceof FeedError && !err.retryable;
      if (feedFailedForGood) {
        // Its turn passes, so one broken item does not take every run's first place.
        checked(d, card.id, startedAt);
        continue;
      }
      outcome.left += due.length - i - 1;
      break;
    }
  }
  return outcome;
}

/** Moves the card to the end of the rotation. */
function checked(d: ReplyCheckDeps, id: string, at: number): void {
  d.lastChecked.delete(id);
  d.lastChecked.set(id, at);
}
