/**
 * The contract between pollers (which bring feed items into Lark) and @bot replies (which take
 * chat replies back to the feed). Sources implement FeedSource; the poller records every card it
 * posts as a PostedCard so a reply in the card's thread finds its item.
 */

/** One item of an outside feed (a Guance issue, an HTTP feed entry), as a card shows it. */
export interface FeedItem {
  /** The item's id in the source (Guance issue uuid, the feed's id field); unique per poller. */
  id: string;
  title: string;
  /** When the item was created in the source (ms since epoch): the cursor moves by this. */
  createdAt: number;
  /** Extra fields shown on the card (level, resource, description …), already strings. */
  fields: Record<string, string>;
  /** A link to the item in the source, when it has one. */
  url?: string;
}

/** A comment on an item, as the source lists it (the http source's optional replies feed). */
export interface FeedReply {
  id: string;
  itemId: string;
  author: string;
  text: string;
  createdAt: number;
}

export interface FeedSource {
  /**
   * Items created in [since, until) (ms since epoch), oldest first. Throws FeedError on failure.
   * `onePage`: only the first page of a paged source (`npm run flows:try` shows a sample).
   */
  list(since: number, until: number, signal?: AbortSignal, options?: { onePage?: boolean }): Promise<FeedItem[]>;
  /** Adds a comment to an item in the source. Absent when the source takes no replies. */
  addReply?(itemId: string, text: string, author: string, signal?: AbortSignal): Promise<void>;
  /** New comments on an item since `since`, when the source offers a replies feed. */
  listReplies?(itemId: string, since: number, signal?: AbortSignal): Promise<FeedReply[]>;
}

/** A source call that failed: what the poller records as the run's error. */
export class FeedError extends Error {
  constructor(
    message: string,
    /** True for network errors, timeouts and 5xx: try again with backoff. */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'FeedError';
  }
}

/** Stored once Lark accepted the card (collection "poller-cards", id = `${pollerId}:${itemId}`). */
export interface PostedCard {
  id: string;
  pollerId: string;
  itemId: string;
  /** The item's title when posted: @bot answers name the item by it. Optional (older records lack it). */
  title?: string;
  /** Set when posted with the app bot (notify.chatId): replies are only possible then. */
  chatId?: string;
  messageId?: string;
  postedAt: string;
  updatedAt: string;
}

/** The store names both sides use. */
export const POSTED_CARDS = 'poller-cards';
/** KeySpace: Lark message id of a posted card → PostedCard id, so a thread reply finds its item. */
export const CARD_BY_MESSAGE = 'poller-card-by-message';
