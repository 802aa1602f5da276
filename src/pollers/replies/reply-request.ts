import type { Mention } from '../../lark/received-message.js';

/** What a chat message that mentions the bot asks for. */
export type ReplyRequest =
  /** Add `text` as a comment: on item `itemId` (the `#id#` form), else on the card the message replies to. */
  | { kind: 'comment'; text: string; itemId?: string; repliesTo: string[] }
  /** Neither a reply in a thread nor the `#id#` form: the bot says how to comment. */
  | { kind: 'help' }
  /** An image, a file, a sticker …: only text can become a comment. */
  | { kind: 'unsupported'; messageType: string };

/** The fields of a received message this reads (a stored ChatReply has them too). */
export interface MessageParts {
  messageType: string;
  content: string;
  mentions: Mention[];
  rootId?: string;
  parentId?: string;
}

// `#<item id># text`: the id is anything but `#` and line breaks (Guance uuids, feed ids, any script).
const HASH_FORM = /^#([^#\r\n]{1,200})#([\s\S]*)$/;

/** True when the bot is among the message's @mentions. */
export function mentionsBot(mentions: readonly Mention[], botOpenId: string): boolean {
  return mentions.some((m) => m.openId === botOpenId);
}

/**
 * Reads a message that mentions the bot. The text is the message's text with the bot's mention
 * removed (other people's mentions read `@Name`), trimmed; `#id#` at its start names the item.
 */
export function readReplyRequest(m: MessageParts, botOpenId: string): ReplyRequest {
  const raw = plainText(m.messageType, m.content);
  if (raw === undefined) return { kind: 'unsupported', messageType: m.messageType };
  const text = resolveMentions(raw, m.mentions, botOpenId).trim();
  const repliesTo = [...new Set([m.rootId, m.parentId].filter((x): x is string => !!x))];
  const hash = HASH_FORM.exec(text);
  const itemId = hash?.[1]!.trim();
  if (hash && itemId) return { kind: 'comment', itemId, text: hash[2]!.trim(), repliesTo };
  if (repliesTo.length) return { kind: 'comment', text, repliesTo };
  return { kind: 'help' };
}

/** Replaces each `@_user_N` placeholder: the bot's by nothing, anyone else's by `@Name`. */
function resolveMentions(text: string, mentions: readonly Mention[], botOpenId: string): string {
  // Longest key first, so @_user_1 does not eat the start of @_user_12.
  const keys = [...mentions].filter((m) => m.key).sort((a, b) => b.key.length - a.key.length);
  let out = text;
  for (const m of keys) out = out.split(m.key).join(m.openId === botOpenId ? '' : `@${m.name || m.openId || 'someone'}`);
  return out;
}

/**
 * The text of a `text` or `post` message; undefined for other types. Receive-side content:
 * text is `{"text": "@_user_1 hello"}`; post is `{"title", "content": [[{tag, text | user_id}]]}`.
 * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/im-v1/message/events/message_content
 */
function plainText(messageType: string, content: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const c = parsed as Record<string, unknown>;
  if (messageType === 'text') return typeof c.text === 'string' ? c.text : undefined;
  if (messageType !== 'post') return undefined;
  // A post may come wrapped in its locale ({"zh_cn": {...}}), as it is sent.
  const body = Array.isArray(c.content) ? c : (Object.values(c).find((v) => v && typeof v === 'object' && Array.isArray((v as Record<string, unknown>).content)) as Record<string, unknown> | undefined);
  if (!body) return undefined;
  const lines = (body.content as unknown[]).map((para) => (Array.isArray(para) ? para.map(elementText).join('') : ''));
  const title = typeof body.title === 'string' && body.title.trim() ? [body.title] : [];
  return [...title, ...lines].join('\n');
}

function elementText(el: unknown): string {
  if (!el || typeof el !== 'object') return '';
  const e = el as Record<string, unknown>;
  if (e.tag === 'at') return typeof e.user_id === 'string' && e.user_id.startsWith('@_user_') ? e.user_id : `@${String(e.user_name ?? '')}`;
  return typeof e.text === 'string' ? e.text : '';
}
