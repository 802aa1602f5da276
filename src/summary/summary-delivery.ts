import { createHash, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { Conflict, Unavailable } from '../errors.js';
import { LarkApiError } from '../lark/lark-error.js';
import type { Messenger } from '../lark/messages.js';
import type { PostContent } from '../lark/post-content.js';
import type { Logger } from '../log.js';
import type { KeySpace } from '../store/store.js';

/** Longer than Lark's own uuid dedup (1 h): a retry the next morning still sends nothing twice. */
const DELIVERY_TTL_MS = 24 * 60 * 60 * 1000;

/** What one Idempotency-Key has delivered, kept in the store under the key (scoped to the token). */
export interface Delivery {
  fingerprint: string;
  /** Per chat, the message id of each part that Lark accepted (null: not sent yet). */
  chats: Array<{ chatId: string; messageIds: Array<string | null> }>;
}

export interface ChatResult {
  chatId: string;
  status: 'sent' | 'failed';
  /** The parts Lark accepted, in order. */
  messageIds: string[];
  larkCode?: number;
  larkMsg?: string;
  /** Lark was never reached for this chat (dns: its domain did not resolve; network: no connection). */
  unreachable?: 'dns' | 'network';
}

export interface DeliveryRequest {
  chats: string[];
  parts: PostContent[];
  /** Hash of the request body: the same key with another body is a conflict. */
  fingerprint: string;
  /** The Idempotency-Key scoped to the caller's token, when one was sent. */
  key?: string;
}

export interface DeliveryOptions {
  messenger: Messenger;
  deliveries: KeySpace<Delivery>;
  clock: Clock;
  logger: Logger;
}

/**
 * Sends every part to every chat (one refusing chat does not stop the others) and says per
 * chat what happened. With an Idempotency-Key, what Lark accepted is
 * remembered per chat and part, so a retry sends only what is missing; each send carries a uuid
 * derived from the key, chat and part, so Lark itself drops a repeat within the hour even if
 * our record of it was lost (a crash between Lark's answer and our write).
 */
export function createSummaryDelivery(o: DeliveryOptions) {
  // Requests with the same key run one after the other: the second sees what the first sent.
  const running = new Map<string, Promise<unknown>>();

  function oneAtATime<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = running.get(key) ?? Promise.resolve();
    const result = previous.then(work, work);
    const settled = result.then(
      () => undefined,
      () => undefined,
    );
    running.set(key, settled);
    void settled.then(() => {
      if (running.get(key) === settled) running.delete(key);
    });
    return result;
  }

  async function deliver(req: DeliveryRequest): Promise<{ results: ChatResult[]; replayed: boolean }> {
    const key = req.key;
    if (key === undefined) return sendAll(req, freshDelivery(req), () => randomUUID(), async () => undefined);
    return oneAtATime(key, async () => {
      const stored = await o.deliveries.get(key);
      if (stored && stored.fingerprint !== req.fingerprint) throw new Conflict('Idempotency-Key was already used with a different request body');
      const delivery = stored ?? freshDelivery(req);
      for (const chatId of req.chats) {
        if (!delivery.chats.some((c) => c.chatId === chatId)) delivery.chats.push({ chatId, messageIds: req.parts.map(() => null) });
      }
      const save = () => o.deliveries.set(key, delivery, o.clock.now() + DELIVERY_TTL_MS);
      if (!stored) {
        try {
          await save(); // the key is taken before anything is sent
        } catch (err) {
          o.logger.error({ err }, 'could not persist a summary delivery');
          throw new Unavailable('the request could not be saved (the store does not take writes); nothing was sent, try again');
        }
      }
      const uuid = (chatId: string, part: number) => createHash('sha256').update(['summary', key, chatId, `${part}/${req.parts.length}`].join('\u0000')).digest('base64url');
      return sendAll(req, delivery, uuid, save);
    });
  }

  async function sendAll(req: DeliveryRequest, delivery: Delivery, uuidFor: (chatId: string, part: number) => string, save: () => Promise<void>) {
    let sentNow = 0;
    const sendChat = async (chatId: string): Promise<ChatResult> => {
      const slots = delivery.chats.find((c) => c.chatId === chatId)!.messageIds;
      for (let part = 0; part < req.parts.length; part++) {
        if (slots[part]) continue;
        try {
          slots[part] = (await o.messenger.sendToChat(chatId, 'post', req.parts[part], uuidFor(chatId, part))).messageId;
          sentNow++;
        } catch (err) {
          if (!(err instanceof LarkApiError)) throw err;
          // Later parts wait for this one: a chat never sees part 3 without part 2.
          return { chatId, status: 'failed', messageIds: sentIds(slots), larkCode: err.code, larkMsg: err.larkMsg, ...(err.unreachable ? { unreachable: err.unreachable } : {}) };
        }
        // Lark has the message; if this write fails, the uuid still makes a retry a no-op for an hour.
        await save().catch((err: unknown) => o.logger.error({ err, chatId }, 'could not record a sent summary part'));
      }
      return { chatId, status: 'sent', messageIds: sentIds(slots) };
    };
    // One chat after the other (in the order asked), each to its end whatever the others did.
    const results: ChatResult[] = [];
    let unexpected: unknown;
    for (const chatId of req.chats) {
      try {
        results.push(await sendChat(chatId));
      } catch (err) {
        unexpected ??= err;
      }
    }
    if (unexpected !== undefined) throw unexpected;
    return { results, replayed: req.key !== undefined && sentNow === 0 && results.every((r) => r.status === 'sent') };
  }

  return { deliver };
}

function freshDelivery(req: DeliveryRequest): Delivery {
  return { fingerprint: req.fingerprint, chats: req.chats.map((chatId) => ({ chatId, messageIds: req.parts.map(() => null) })) };
}

const sentIds = (slots: Array<string | null>) => slots.filter((id): id is string => id !== null);
