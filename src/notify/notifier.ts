/**
 * Where a poller posts. One notifier per platform (the Lark app bot, Lark custom bots, DingTalk
 * and WeCom group robots), each a file in src/notify/ behind this interface: a further IM is one
 * more file and one line in create-notifier.ts.
 */

export type Severity = 'critical' | 'high' | 'medium' | 'low' | 'unknown';

/** One feed item as every platform shows it. Texts come from outside: notifiers never treat them as markup. */
export interface IssueMessage {
  itemId: string;
  title: string;
  /** P0–P3, or the source's own level text. */
  level?: string;
  severity: Severity;
  /** The poller's name: where the item comes from. */
  source: string;
  resource?: string;
  description?: string;
  /** More lines: label → value. */
  fields: Array<{ label: string; value: string }>;
  /** When the item was created (ms since epoch). */
  createdAt: number;
  /** An http(s) link to the item. */
  url?: string;
  /** Replies in the card's thread reach the source. */
  repliesOn: boolean;
}

export type NotifierType = 'lark-app' | 'lark-webhook' | 'dingtalk' | 'wecom';

export interface Notifier {
  readonly type: NotifierType;
  /** Where posts go, for logs and GET /api/pollers: a chat id, or a webhook without its key. */
  readonly target: string;
  /**
   * Posts one item; resolves once the platform accepted it. `dedupKey` (at most 50 characters)
   * is sent where the platform drops repeats by it (Lark's message uuid, for an hour).
   */
  post(message: IssueMessage, dedupKey: string): Promise<{ messageId?: string; chatId?: string }>;
}

/** The platform did not take the post. `retryable`: it may take it later (rate limit, 5xx, no answer). */
export class NotifyError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'NotifyError';
  }
}

/** "https://host/path/…" of a webhook: its token (last path segment, query) never shows. */
export function describeWebhook(url: string): string {
  try {
    const u = new URL(url);
    const parts = u.pathname.split('/');
    if (parts.length > 2 && (parts.at(-1) ?? '').length > 0 && !u.search) parts[parts.length - 1] = '…';
    return `${u.origin}${parts.join('/')}${u.search ? '?…' : ''}`;
  } catch {
    return '(invalid URL)';
  }
}

export function formatTime(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** Cuts text to `max` UTF-8 bytes on a character boundary, with an ellipsis when cut. */
export function cutToBytes(text: string, max: number): string {
  if (Buffer.byteLength(text) <= max) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}…`;
}
