import { TooLarge } from '../errors.js';
import type { PostContent, PostElement } from '../lark/post-content.js';

/**
 * Lark limits the request body of a rich-text (post) or card message to 30 KB and answers
 * 230025 beyond it (text messages: 150 KB); a message uuid is at most 50 characters.
 * https://open.feishu.cn/document/server-docs/im-v1/message/create
 */
export const POST_REQUEST_LIMIT_BYTES = 30 * 1024;
export const MAX_UUID_CHARS = 50;
/** Room left for anything the SDK might add to the body around what we measure. */
const SAFETY_BYTES = 256;
/** More parts than this is no longer a summary (and 5 messages/s per chat would make it slow). */
export const MAX_PARTS = 10;

type Paragraph = PostElement[];

/** Bytes of the whole message-create request body, as the SDK serialises it. */
export function postRequestBytes(receiveId: string, post: PostContent, uuid: string): number {
  return Buffer.byteLength(JSON.stringify({ receive_id: receiveId, msg_type: 'post', content: JSON.stringify(post), uuid }));
}

/**
 * Bytes a piece of the post's JSON takes in the request body: it is a run of characters inside
 * the `content` string, so it is escaped once more. Escaping works character by character, so
 * the pieces of a post add up to the whole.
 */
const inBody = (json: string) => Buffer.byteLength(JSON.stringify(json)) - 2;
const SEPARATOR = inBody(',');
const BRACKETS = inBody('[]');
const EMPTY_TEXT = inBody(JSON.stringify({ tag: 'text', text: '' }));
const elementBytes = (e: PostElement) => inBody(JSON.stringify(e));
const paragraphBytes = (p: Paragraph) => BRACKETS + p.reduce((n, e, i) => n + elementBytes(e) + (i ? SEPARATOR : 0), 0);
const charBytes = (c: string) => inBody(JSON.stringify(c).slice(1, -1));

/**
 * Splits a post so that the request sending each part to `receiveId` fits Lark's limit,
 * between paragraphs where it can and between characters inside a paragraph too long for one
 * message. Parts are titled "title (1/3)", "title (2/3)"… A post that fits is returned as is.
 * Throws TooLarge when it would take more than `maxParts` messages or an element cannot be cut.
 */
export function splitPostToFit(post: PostContent, receiveId: string, limitBytes = POST_REQUEST_LIMIT_BYTES - SAFETY_BYTES, maxParts = MAX_PARTS): PostContent[] {
  const widestUuid = 'u'.repeat(MAX_UUID_CHARS);
  if (postRequestBytes(receiveId, post, widestUuid) <= limitBytes) return [post];
  const { title, content } = post.zh_cn;
  const titled = (n: number, of: number) => (title ? `${title} (${n}/${of})` : `(${n}/${of})`);
  const capacity = limitBytes - postRequestBytes(receiveId, { zh_cn: { title: titled(maxParts, maxParts), content: [] } }, widestUuid);

  const groups = groupParagraphs(content, capacity);
  if (groups.length > maxParts) {
    throw new TooLarge(`summaryText needs ${groups.length} messages at Lark's 30 KB per message; at most ${maxParts} are sent: shorten it`, {
      parts: groups.length,
      maxParts,
      limitBytes: POST_REQUEST_LIMIT_BYTES,
    });
  }
  // The sums are exact (test/summary-delivery.test.ts measures every part whole), and a title
  // "(i/n)" is never wider than the "(max/max)" the capacity was computed with.
  return groups.map((g, i) => ({ zh_cn: { title: titled(i + 1, groups.length), content: g } }));
}

/** Greedy: whole paragraphs while they fit; a paragraph larger than a part is cut across parts. */
function groupParagraphs(paragraphs: Paragraph[], capacity: number): Paragraph[][] {
  const groups: Paragraph[][] = [];
  let current: Paragraph[] = [];
  let used = 0;
  const room = () => capacity - used - (current.length ? SEPARATOR : 0);
  const add = (p: Paragraph, bytes: number) => {
    used += bytes + (current.length ? SEPARATOR : 0);
    current.push(p);
  };
  const flush = () => {
    if (current.length) groups.push(current);
    current = [];
    used = 0;
  };
  for (const paragraph of paragraphs) {
    let rest = paragraph;
    for (;;) {
      const bytes = paragraphBytes(rest);
      if (bytes <= room()) {
        add(rest, bytes);
        break;
      }
      if (current.length && bytes <= capacity) {
        flush(); // the whole paragraph fits in the next part: keep it in one piece
        continue;
      }
      const [head, tail] = cutParagraph(rest, room());
      if (head.length === 0) {
        if (!current.length) throw new TooLarge('summaryText holds an element (a mention) too long for one Lark message');
        flush();
        continue;
      }
      add(head, paragraphBytes(head));
      if (tail.length === 0) break;
      flush();
      rest = tail;
    }
  }
  flush();
  return groups;
}

/** The longest beginning of the paragraph that fits in `room` bytes, and the rest. */
function cutParagraph(p: Paragraph, room: number): [Paragraph, Paragraph] {
  const head: Paragraph = [];
  let used = BRACKETS;
  for (let i = 0; i < p.length; i++) {
    const e = p[i]!;
    const sep = head.length ? SEPARATOR : 0;
    const bytes = elementBytes(e) + sep;
    if (used + bytes <= room) {
      head.push(e);
      used += bytes;
      continue;
    }
    if (e.tag !== 'text') return [head, p.slice(i)];
    const [first, second] = cutText(e.text, room - used - sep - EMPTY_TEXT);
    if (first) head.push({ tag: 'text', text: first });
    return [head, [...(second ? [{ tag: 'text' as const, text: second }] : []), ...p.slice(i + 1)]];
  }
  return [head, []];
}

/** Cuts between characters (never inside a surrogate pair) so the first half takes at most `room` bytes. */
function cutText(text: string, room: number): [string, string] {
  let used = 0;
  let at = 0;
  for (const c of text) {
    const bytes = charBytes(c);
    if (used + bytes > room) break;
    used += bytes;
    at += c.length;
  }
  return [text.slice(0, at), text.slice(at)];
}
