import type { Clock } from '../clock.js';
import type { KeySpace } from '../store/store.js';
import { SEEN_EVENT_RETENTION_MS } from './event-security.js';

export type Once<T> = { ran: true; result: T } | { ran: false };

/**
 * Runs `work` for the first delivery of `key` only. The key is claimed before the work (one
 * atomic, durable insert), so of two concurrent deliveries exactly one runs; if the work fails
 * the claim is given back, so Lark's redelivery is handled instead of dropped.
 */
export async function handleOnce<T>(seen: KeySpace<number>, clock: Clock, key: string, work: () => Promise<T>): Promise<Once<T>> {
  const now = clock.now();
  if (!(await seen.claim(key, now, now + SEEN_EVENT_RETENTION_MS))) return { ran: false };
  try {
    return { ran: true, result: await work() };
  } catch (err) {
    await seen.delete(key).catch(() => undefined);
    throw err;
  }
}
