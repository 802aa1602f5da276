import { describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../src/clock.js';
import { LarkRateLimiter } from '../src/lark/rate-limiter.js';

/** Logical time: a sleep ends on the next macrotask, moving the clock by its length, unless it is woken first. */
function steppingClock(): Clock {
  let t = 1_000_000;
  return {
    now: () => t,
    sleep: (ms, signal) =>
      new Promise<void>((resolve) => {
        const timer = setImmediate(() => {
          t += ms;
          resolve();
        });
        signal?.addEventListener('abort', () => (clearImmediate(timer), resolve()), { once: true });
      }),
  };
}

/** Every stretch of `ms` holds at most `limit` of these (ascending) start times. */
function maxInWindow(starts: number[], ms: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < starts.length; i++) {
    while (starts[i]! - starts[j]! >= ms) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

describe('LarkRateLimiter: per app, per API', () => {
  it('holds 50/s and 1,000/min for message create, card update and instance get each (windows scaled down)', async () => {
    // Real time, with Lark's second as 10 ms and its minute as 600 ms. A call starts synchronously
    // when admitted, so the clock reading the limiter took just before is when it left.
    let lastReading = 0;
    const clock: Clock = { ...systemClock, now: () => (lastReading = Date.now()) };
    const limiter = new LarkRateLimiter({ clock, secondMs: 10, minuteMs: 600 });
    const starts = new Map<string, number[]>();
    const run = (api: string, n: number) =>
      Array.from({ length: n }, (_, i) =>
        limiter.schedule(api, `key-${i}`, async () => {
          const list = starts.get(api) ?? [];
          list.push(lastReading);
          starts.set(api, list);
        }),
      );
    await Promise.all([...run('im.message.create', 1100), ...run('im.message.patch', 1100), ...run('approval.instance.get', 1100)]);
    for (const api of ['im.message.create', 'im.message.patch', 'approval.instance.get']) {
      const s = starts.get(api)!;
      expect(s, api).toHaveLength(1100);
      expect(maxInWindow(s, 10), api).toBeLessThanOrEqual(50);
      expect(maxInWindow(s, 600), api).toBeLessThanOrEqual(1000);
      // Both windows bound: the per-second one spread the first thousand over 19 "seconds", the
      // per-minute one held the 1,001st until a "minute" after the first.
      expect(s[999]! - s[0]!, api).toBeGreaterThanOrEqual(19 * 10);
      expect(s[1000]! - s[0]!, api).toBeGreaterThanOrEqual(600);
    }
  });

  it('keeps each API in its own windows: a full message budget does not hold back instance gets', async () => {
    const clock = steppingClock();
    const limiter = new LarkRateLimiter({ clock });
    const t0 = clock.now();
    const creates = Array.from({ length: 60 }, (_, i) => limiter.schedule('im.message.create', `oc_${i}`, async () => clock.now()));
    const gets = Array.from({ length: 50 }, () => limiter.schedule('approval.instance.get', 'approval', async () => clock.now()));
    expect(new Set(await Promise.all(gets))).toEqual(new Set([t0]));
    const createTimes = await Promise.all(creates);
    expect(createTimes.filter((t) => t === t0)).toHaveLength(50);
    expect(createTimes.slice(50)).toEqual(Array(10).fill(t0 + 1000));
  });
});

describe('LarkRateLimiter: per chat and per message', () => {
  it('admits 5/s per chat for sends and per message for card updates, without holding other keys back', async () => {
    const clock = steppingClock();
    const limiter = new LarkRateLimiter({ clock });
    const t0 = clock.now();
    const chatA = Array.from({ length: 11 }, () => limiter.schedule('im.message.create', 'oc_A', async () => clock.now()));
    // Scheduled while oc_A waits for its window: goes at once.
    const chatB = await limiter.schedule('im.message.create', 'oc_B', async () => clock.now());
    expect(chatB).toBe(t0);
    expect(await Promise.all(chatA)).toEqual([...Array(5).fill(t0), ...Array(5).fill(t0 + 1000), t0 + 2000]);

    const t1 = clock.now();
    const patches = Array.from({ length: 6 }, () => limiter.schedule('im.message.patch', 'om_1', async () => clock.now()));
    expect(await Promise.all(patches)).toEqual([...Array(5).fill(t1), t1 + 1000]);
    // Another API is not held by a chat's window, and instance gets have no per-key limit.
    const gets = Array.from({ length: 6 }, () => limiter.schedule('approval.instance.get', 'approval', async () => clock.now()));
    expect(new Set(await Promise.all(gets))).toEqual(new Set([clock.now()]));
  });

  it('forgets a chat once its last call left the window', async () => {
    const clock = steppingClock();
    const limiter = new LarkRateLimiter({ clock });
    await Promise.all(Array.from({ length: 10 }, (_, i) => limiter.schedule('im.message.create', `oc_${i}`, async () => undefined)));
    expect(limiter.trackedKeys).toBe(10);
    await clock.sleep(1001);
    expect(limiter.trackedKeys).toBe(0);
  });

  it('passes a call’s failure to its caller and keeps going', async () => {
    const limiter = new LarkRateLimiter({ clock: steppingClock() });
    await expect(limiter.schedule('im.message.create', 'oc_x', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(limiter.schedule('im.message.create', 'oc_x', async () => 'next')).resolves.toBe('next');
  });
});
