import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Constant-time comparison of two secrets (every one the service makes is in this module). Both
 * sides are hashed first, so inputs of different lengths compare in the same time and
 * timingSafeEqual never throws on a length mismatch; equal SHA-256 digests mean equal inputs,
 * so nothing else is compared.
 */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** Two SHA-256 digests compared in constant time: for secrets hashed once ahead (the API tokens), one hash per request less. */
export function sameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
