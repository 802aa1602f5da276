import { randomUUID } from 'node:crypto';
import type { LarkClient } from './client.js';
import type { LarkCall } from './lark-call.js';
import { assertLarkOk, LarkApiError } from './lark-error.js';

export type MsgType = 'text' | 'post' | 'interactive';

export interface Messenger {
  /** Sends a message to a chat; retried on rate limits and 5xx; resolves with Lark's message id. */
  sendToChat(chatId: string, msgType: MsgType, content: unknown, uuid?: string): Promise<{ messageId: string }>;
  /** Replaces the content of a card sent earlier with update_multi. */
  patchCard(messageId: string, card: unknown): Promise<void>;
  /**
   * Replies to a message; with `inThread` the reply goes in the message's thread (one is opened
   * when there is none). `chatId`, when known, keys the per-chat rate limit.
   */
  replyTo(messageId: string, msgType: MsgType, content: unknown, o?: { inThread?: boolean; uuid?: string; chatId?: string }): Promise<{ messageId: string }>;
}

export function createMessenger(client: LarkClient, larkCall: LarkCall): Messenger {
  return {
    async sendToChat(chatId, msgType, content, uuid = randomUUID()) {
      // The same uuid on every retry: Lark drops a duplicate send with the same uuid within an hour.
      const answer = await larkCall('im.message.create', chatId, async () =>
        assertLarkOk(
          await client.im.v1.message.create({
            params: { receive_id_type: 'chat_id' },
            data: { receive_id: chatId, msg_type: msgType, content: JSON.stringify(content), uuid },
          }),
        ),
      );
      const messageId = answer.data?.message_id;
      if (!messageId) throw new LarkApiError(-1, 'message create answered without a message_id', 200, false);
      return { messageId };
    },
    async patchCard(messageId, card) {
      // 5 updates/s per message: the limiter key is the message id.
      await larkCall('im.message.patch', messageId, async () =>
        assertLarkOk(await client.im.v1.message.patch({ path: { message_id: messageId }, data: { content: JSON.stringify(card) } })),
      );
    },
    // https://open.feishu.cn/document/server-docs/im-v1/message/reply: reply_in_thread, and a uuid
    // that makes Lark drop a repeat within an hour, as for message create.
    async replyTo(messageId, msgType, content, o = {}) {
      const uuid = o.uuid ?? randomUUID();
      const answer = await larkCall('im.message.reply', o.chatId ?? messageId, async () =>
        assertLarkOk(
          await client.im.v1.message.reply({
            path: { message_id: messageId },
            data: { content: JSON.stringify(content), msg_type: msgType, reply_in_thread: o.inThread ?? false, uuid },
          }),
        ),
      );
      const replyId = answer.data?.message_id;
      if (!replyId) throw new LarkApiError(-1, 'message reply answered without a message_id', 200, false);
      return { messageId: replyId };
    },
  };
}
