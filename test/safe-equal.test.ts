import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { sameDigest, safeEqual } from '../src/safe-equal.js';

describe('safeEqual, the one constant-time compare', () => {
  it('is true for the same bytes, as strings, Buffers or one of each', () => {
    expect(safeEqual('secret-token', 'secret-token')).toBe(true);
    expect(safeEqual(Buffer.from('secret-token'), Buffer.from('secret-token'))).toBe(true);
    expect(safeEqual('审批', Buffer.from('审批', 'utf8'))).toBe(true);
    expect(safeEqual('', '')).toBe(true);
  });

  it('is false for the same length with one byte changed, anywhere', () => {
    expect(safeEqual('secret-token', 'secret-tokeN')).toBe(false);
    expect(safeEqual('secret-token', 'Secret-token')).toBe(false);
    expect(safeEqual('ab'.repeat(32), `${'ab'.repeat(31)}ac`)).toBe(false);
  });

  it('is false for a prefix, an extension, the empty string, and without throwing on the length difference', () => {
    expect(safeEqual('secret-token', 'secret-toke')).toBe(false);
    expect(safeEqual('secret-token', 'secret-token ')).toBe(false);
    expect(safeEqual('secret-token', '')).toBe(false);
    expect(safeEqual('', 'secret-token')).toBe(false);
    expect(safeEqual(Buffer.alloc(0), Buffer.alloc(1))).toBe(false);
  });
});

describe('sameDigest, for secrets hashed ahead', () => {
  const d = (s: string) => createHash('sha256').update(s).digest();

  it('is true only for the same digest, false for one bit off or another length, without throwing', () => {
    expect(sameDigest(d('secret-token'), d('secret-token'))).toBe(true);
    expect(sameDigest(d('secret-token'), d('secret-tokeN'))).toBe(false);
    const flipped = d('secret-token');
    flipped[31] = flipped[31]! ^ 1;
    expect(sameDigest(d('secret-token'), flipped)).toBe(false);
    expect(sameDigest(d('secret-token'), d('secret-token').subarray(0, 31))).toBe(false);
    expect(sameDigest(Buffer.alloc(0), Buffer.alloc(0))).toBe(true);
  });
});
