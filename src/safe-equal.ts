import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The one constant-time comparison. Both sides are hashed first, so inputs of different lengths
 * compare in the same time and timingSafeEqual never throws on a length mismatch.
 */
export function safeEqual(a: string | Buffer, b: string | Buffer): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && Buffer.byteLength(a) === Buffer.byteLength(b);
}
