import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { backoffDelay } from '../backoff.js';
import type { Logger } from '../log.js';
import type { LarkClient } from './client.js';
import { assertLarkOk, classifyLarkFailure, LarkApiError } from './lark-error.js';
import type { LarkRateLimiter } from './rate-limiter.js';

export type MsgType = 'text' | 'post' | 'interactive';

export interface Messenger {
  /** Sends a message to a chat; retried on rate limits and 5xx; resolves with Lark's message id. */
  sendToChat(chatId: string, msgType: MsgType, content: unknown): Promise<{ messageId: string }>;
}

export interface MessengerOptions {
  client: LarkClient;
  limiter: LarkRateLimiter;
  clock: Clock;
  logger: Logger;
  attempts?: number;
  retryBaseMs?: number;
}

export function createMessenger(o: MessengerOptions): Messenger {
  const attempts = o.attempts ?? 4;
  const retryBaseMs = o.retryBaseMs ?? 500;

  async function withRetries<T>(what: string, key: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await o.limiter.schedule(key, call);
      } catch (err) {
        const failure = classifyLarkFailure(err);
        if (!failure.retryable || attempt >= attempts) throw failure;
        const wait = failure.retryAfterSec !== undefined ? Math.min(failure.retryAfterSec * 1000, 60_000) : backoffDelay(attempt, retryBaseMs);
        o.logger.warn({ what, code: failure.code, attempt, wait }, 'Lark call failed, retrying');
        await o.clock.sleep(wait);
      }
    }
  }

  return {
    async sendToChat(chatId, msgType, content) {
      // The same uuid on every retry: Lark drops a duplicate send with the same uuid within an hour.
      const uuid = randomUUID();
      const answer = await withRetries('im.message.create', chatId, async () =>
        assertLarkOk(
          await o.client.im.v1.message.create({
            params: { receive_id_type: 'chat_id' },
            data: { receive_id: chatId, msg_type: msgType, content: JSON.stringify(content), uuid },
          }),
        ),
      );
      const messageId = answer.data?.message_id;
      if (!messageId) throw new LarkApiError(-1, 'message create answered without a message_id', 200, false);
      return { messageId };
    },
  };
}
