import { describe, expect, it } from 'vitest';
import { LarkRateLimiter } from '../src/lark/rate-limiter.js';

describe('LarkRateLimiter', () => {
  it('admits at most 5 calls per second per chat, also across an idle gap', async () => {
    const limiter = new LarkRateLimiter(50, 5);
    const starts: number[] = [];
    const call = () => limiter.schedule('oc_chat', async () => void starts.push(Date.now()));
    await Promise.all(Array.from({ length: 5 }, call));
    // The chat went idle; five more right away must still wait for the window.
    await Promise.all(Array.from({ length: 5 }, call));
    expect(starts).toHaveLength(10);
    expect(starts[5]! - starts[0]!).toBeGreaterThanOrEqual(950);
  });

  it('does not hold other chats back and forgets idle chats after the window', async () => {
    const limiter = new LarkRateLimiter(50, 5);
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 5 }, (_, i) => limiter.schedule(`oc_${i}`, async () => undefined)));
    await Promise.all(Array.from({ length: 5 }, (_, i) => limiter.schedule(`oc_${i + 5}`, async () => undefined)));
    expect(Date.now() - t0).toBeLessThan(500);
    expect(limiter.trackedKeys).toBe(10);
    await new Promise((r) => setTimeout(r, 1200));
    expect(limiter.trackedKeys).toBe(0);
  });
});
