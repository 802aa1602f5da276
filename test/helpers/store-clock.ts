import type { Clock } from '../../src/clock.js';

export type FakeClock = Clock & { advance(ms: number): void };

/** A clock that moves only when told: retention and expiry are tested without waiting. */
export function fakeClock(start = Date.parse('2026-11-20T10:00:00Z')): FakeClock {
  let t = start;
  return { now: () => t, sleep: async () => undefined, advance: (ms) => (t += ms) };
}
