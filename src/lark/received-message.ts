import { z } from 'zod';
import { InvalidInput } from '../errors.js';

/** Someone @mentioned in a message: `key` is the placeholder (`@_user_1`) the content carries. */
export interface Mention {
  key: string;
  openId?: string;
  name: string;
}

/**
 * An `im.message.receive_v1` event, as the rest of the code sees it.
 * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/reference/im-v1/message/events/receive
 */
export interface ReceivedMessage {
  eventId: string;
  messageId: string;
  /** The first message of the reply tree (the card, for a reply in a card's thread). */
  rootId?: string;
  /** The message replied to; inside a thread Lark sets it to the root too. */
  parentId?: string;
  threadId?: string;
  chatId: string;
  /** `group` or `p2p`. */
  chatType: string;
  /** text, post, image, interactive … */
  messageType: string;
  /** A JSON string whose shape depends on messageType; @mentions appear as `@_user_N`. */
  content: string;
  mentions: Mention[];
  senderOpenId?: string;
  /** `user` for people; `app` for bots. */
  senderType: string;
}

const id = z.object({ open_id: z.string().optional(), user_id: z.string().optional(), union_id: z.string().optional() }).partial();

// The SDK flattens the v2 envelope: header fields (event_id …) and event fields (sender, message) side by side.
const eventSchema = z.object({
  event_id: z.string().min(1),
  sender: z.object({ sender_id: id.optional(), sender_type: z.string() }),
  message: z.object({
    message_id: z.string().min(1),
    root_id: z.string().optional(),
    parent_id: z.string().optional(),
    thread_id: z.string().optional(),
    chat_id: z.string().min(1),
    chat_type: z.string(),
    message_type: z.string(),
    content: z.string(),
    mentions: z.array(z.object({ key: z.string(), id: id.optional(), name: z.string().optional() })).optional(),
  }),
});

const orUndefined = (s: string | undefined) => (s ? s : undefined);

/** Reads the flattened event; a payload without the fields Lark documents is refused as bad input. */
export function readReceivedMessage(data: unknown): ReceivedMessage {
  const parsed = eventSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidInput(`im.message.receive_v1 event: ${issue.path.join('.') || '(event)'}: ${issue.message}`);
  }
  const { event_id, sender, message: m } = parsed.data;
  return {
    eventId: event_id,
    messageId: m.message_id,
    rootId: orUndefined(m.root_id),
    parentId: orUndefined(m.parent_id),
    threadId: orUndefined(m.thread_id),
    chatId: m.chat_id,
    chatType: m.chat_type,
    messageType: m.message_type,
    content: m.content,
    mentions: (m.mentions ?? []).map((x) => ({ key: x.key, openId: orUndefined(x.id?.open_id), name: x.name ?? '' })),
    senderOpenId: orUndefined(sender.sender_id?.open_id),
    senderType: sender.sender_type,
  };
}
