import { createHash } from 'node:crypto';

/**
 * Comments added from the chat, remembered per item by their text: a replies feed that lists
 * them back is not echoed into the card's thread as a "new comment".
 */
export const REPLY_ECHOES = 'poller-reply-echoes';
/** How long a comment added from the chat, and a reply reminder posted, are remembered. */
export const REPLY_MEMORY_MS = 30 * 86_400_000;

/** One key per (poller, item, text); JSON keeps the parts apart whatever they contain. */
export function echoKey(pollerId: string, itemId: string, text: string): string {
  return JSON.stringify([pollerId, itemId, createHash('sha256').update(text.trim()).digest('hex')]);
}

/** A Lark `uuid` (at most 50 characters) derived from what is sent, so a resend is dropped by Lark within its hour. */
export function sendUuid(...parts: string[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 40);
}
