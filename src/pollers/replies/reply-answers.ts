import type { Refusal } from './reply-target.js';

/** The item an answer is about, as the card showed it. */
export interface ItemRef {
  pollerId: string;
  itemId: string;
  title?: string;
}

/** How a message ended: what the bot tells in the thread. Stored with the message until it is told. */
export type Outcome =
  | { kind: 'added'; item: ItemRef; author: string }
  | { kind: 'failed'; item: ItemRef; error: string }
  /** The service stopped while the source was being called: the comment may or may not be there. */
  | { kind: 'interrupted'; item: ItemRef }
  | ({ kind: 'refused' } & Refusal)
  | { kind: 'empty'; item: ItemRef }
  | { kind: 'help' }
  | { kind: 'unsupported'; messageType: string };

const name = (i: ItemRef) => (i.title ? `"${i.title}" (#${i.itemId}#)` : `#${i.itemId}#`);
const HOW = 'reply in the thread of an issue card mentioning me, or write @bot #<issue id># your comment';
// Source errors are shown to the chat: keep them short.
const MAX_ERROR_CHARS = 300;

/** The text the chat sees for each outcome (README "@bot replies" lists them). */
export function answerText(o: Outcome): string {
  switch (o.kind) {
    case 'added':
      return `✅ Comment added to ${name(o.item)} as ${o.author}.`;
    case 'failed': {
      const error = o.error.length > MAX_ERROR_CHARS ? `${o.error.slice(0, MAX_ERROR_CHARS)}…` : o.error;
      return `❌ Could not add the comment to ${name(o.item)}: ${error}. Nothing was added; send it again later.`;
    }
    case 'interrupted':
      return `⚠️ lark-bridge restarted while adding this comment to ${name(o.item)}: it may or may not have been added. Check the issue before sending it again.`;
    case 'empty':
      return `Nothing to add to ${name(o.item)}: write your comment after the mention.`;
    case 'help':
      return `To comment on an issue, ${HOW}.`;
    case 'unsupported':
      return `Only text messages can be added as comments (this one is ${o.messageType}).`;
    case 'refused':
      return refusalText(o);
  }
}

function refusalText(r: Refusal): string {
  switch (r.reason) {
    case 'not_a_card':
      return `❌ This thread is not under an issue card, so there is nothing to comment on. To comment, ${HOW}.`;
    case 'unknown_id':
      return `❌ No issue #${r.itemId}# was posted here. Check the id on the card, or reply in the card's thread.`;
    case 'other_chat':
      return `❌ Issue #${r.itemId}# was posted to another chat: only members of that chat can comment on it.`;
    case 'webhook_card':
      return `❌ Issue #${r.itemId}# was posted through a group webhook, not by this bot: it takes no replies from the chat.`;
    case 'ambiguous':
      return `❌ Several pollers posted an issue #${r.itemId}# here (${r.pollerIds.join(', ')}): reply in the thread of the card you mean.`;
    case 'poller_gone':
      return `❌ The poller that posted #${r.itemId}# (${r.pollerId}) is no longer configured: the comment was not added.`;
    case 'replies_off':
      return `❌ Replies are turned off for ${r.pollerId} ("replies": false in its flow file): the comment was not added to #${r.itemId}#.`;
    case 'no_reply_api':
      return `❌ The source of ${r.pollerId} takes no replies: the comment was not added to #${r.itemId}#.`;
  }
}
