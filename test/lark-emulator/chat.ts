import { randomBytes } from 'node:crypto';
import { larkError, ok, type LarkEmulator, type StoredMessage } from './emulator.js';

export interface ChatMention {
  openId: string;
  name: string;
}

/**
 * People in chats: their names in the contact directory, and the messages they write (which the
 * emulator stores, so the bot can reply to them, and which a test delivers as
 * `im.message.receive_v1` events with event-sender.ts `messageReceiveEvent`).
 */
export class ChatEmulation {
  /** open id → name, as contact user get shows it. */
  readonly users = new Map<string, string>();
  /** Off: the app lacks the contact scope and every lookup is refused. */
  contactScope = true;

  constructor(private readonly lark: LarkEmulator) {
    this.registerContactUserGet();
  }

  /**
   * GET /open-apis/contact/v3/users/:user_id?user_id_type=open_id → data.user. Without a contact
   * scope Lark answers 99991672 (generic error codes); a user outside the app's contact range,
   * 41050 ("no user authority").
   * https://open.feishu.cn/document/server-docs/contact-v3/user/get
   * https://open.feishu.cn/document/server-docs/api-call-guide/generic-error-code
   */
  private registerContactUserGet(): void {
    this.lark.route('GET', '/open-apis/contact/v3/users/:user_id', (req) => {
      if (!this.contactScope) return larkError(400, 99991672, 'Access denied. One of the following scopes is required: [contact:contact.base:readonly, contact:contact:readonly_as_app]');
      if ((req.query.user_id_type ?? 'open_id') !== 'open_id') return larkError(400, 99992402, 'field validation failed: user_id_type');
      const name = this.users.get(req.params.user_id!);
      if (name === undefined) return larkError(400, 41050, 'no user authority error');
      return ok({ user: { open_id: req.params.user_id, union_id: `on_${req.params.user_id}`, name, en_name: name } });
    });
  }

  /**
   * A person writes a text message in `chatId`: `text` carries `@_user_N` for the N-th of
   * `mentions`, as Lark's receive-side content does. With `replyTo` it answers that message
   * (in its thread when the message has one, or when `inThread`).
   * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/im-v1/message/events/message_content
   */
  userSays(o: { chatId: string; senderOpenId: string; text?: string; messageType?: string; content?: unknown; replyTo?: string; inThread?: boolean }): StoredMessage {
    const msg_type = o.messageType ?? 'text';
    const content = JSON.stringify(o.content ?? { text: o.text ?? '' });
    const sender = { open_id: o.senderOpenId, sender_type: 'user' as const };
    if (o.replyTo) {
      const parent = this.lark.messages.get(o.replyTo);
      if (!parent) throw new Error(`userSays: no message ${o.replyTo}`);
      return this.lark.storeReply(parent, { msg_type, content, sender }, o.inThread ?? false);
    }
    const now = String(Date.now());
    const message: StoredMessage = { message_id: `om_${randomBytes(16).toString('hex')}`, chat_id: o.chatId, msg_type, content, sender, create_time: now, update_time: now, updated: false };
    this.lark.messages.set(message.message_id, message);
    return message;
  }
}
