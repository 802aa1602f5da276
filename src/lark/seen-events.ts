import type { Clock } from '../clock.js';
import type { KeySpace } from '../store/store.js';
import { SEEN_EVENT_RETENTION_MS } from './event-security.js';

export type Once<T> = { ran: true; result: T } | { ran: false };

/**
 * A seen event id: claimed (its handler is running, since `at`) or done. Ids written by earlier
 * versions hold a bare number and count as done.
 */
export type SeenMark = number | { state: 'claimed' | 'done'; at: number };

/**
 * How long a claim whose handler never finished (the process died in between) blocks
 * redeliveries. Lark redelivers after seconds, then minutes: the first redelivery past this
 * takes the claim over, so a crash between claim and handler loses nothing.
 */
export const CLAIM_LEASE_MS = 30_000;

/**
 * Runs `work` for the first delivery of `key` only. The key is claimed before the work (one
 * atomic, durable insert), so of two concurrent deliveries exactly one runs; if the work fails
 * the claim is given back, so Lark's redelivery is handled instead of dropped.
 */
export async function handleOnce<T>(seen: KeySpace<SeenMark>, clock: Clock, key: string, work: () => Promise<T>): Promise<Once<T>> {
  const now = clock.now();
  const expiresAt = now + SEEN_EVENT_RETENTION_MS;
  if (!(await seen.claim(key, { state: 'claimed', at: now }, expiresAt))) {
    if (!isAbandonedClaim(await seen.get(key), now)) return { ran: false };
    await seen.set(key, { state: 'claimed', at: now }, expiresAt);
  }
  let result: T;
  try {
    result = await work();
  } catch (err) {
    await seen.delete(key).catch(() => undefined);
    throw err;
  }
  // Not awaited: the work's own writes are durable; a lost "done" only lets a late redelivery
  // re-run a handler that is idempotent on its own (runs dedup task ids).
  void seen.set(key, { state: 'done', at: now }, expiresAt).catch(() => undefined);
  return { ran: true, result };
}

function isAbandonedClaim(mark: SeenMark | undefined, now: number): boolean {
  return typeof mark === 'object' && mark.state === 'claimed' && now - mark.at > CLAIM_LEASE_MS;
}
