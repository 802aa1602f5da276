import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { CLAIM_LEASE_MS, handleOnce, type SeenMark } from '../src/lark/seen-events.js';
import { openJournalStore as openStore } from '../src/store/open-store.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await removeDir(d);
});

function steppingClock(start = Date.parse('2026-11-20T10:00:00Z')): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, sleep: async () => undefined, advance: (ms) => void (now += ms) };
}

describe('handleOnce: a claim whose handler never finished', () => {
  it('blocks redeliveries during the lease, and the first redelivery after it runs the handler (crash between claim and work)', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const clock = steppingClock();
    const store = await openStore({ dir, clock });
    const seen = store.keys<SeenMark>('lark-events');
    // The crashed process: its claim reached the disk, its handler never ran.
    expect(await seen.claim('ev-1', { state: 'claimed', at: clock.now() }, clock.now() + 86_400_000)).toBe(true);

    let runs = 0;
    const work = async () => ++runs;
    clock.advance(CLAIM_LEASE_MS - 1);
    expect(await handleOnce(seen, clock, 'ev-1', work)).toEqual({ ran: false });
    clock.advance(2);
    expect(await handleOnce(seen, clock, 'ev-1', work)).toEqual({ ran: true, result: 1 });
    await store.flush();
    // Done now: never again, however late the redelivery.
    clock.advance(10 * CLAIM_LEASE_MS);
    expect(await handleOnce(seen, clock, 'ev-1', work)).toEqual({ ran: false });
    expect(runs).toBe(1);
    await store.close();
  });

  it('treats a bare number written by an earlier version as done', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const clock = steppingClock();
    const store = await openStore({ dir, clock });
    const seen = store.keys<SeenMark>('lark-events');
    await seen.set('ev-2', 1, clock.now() + 86_400_000);
    clock.advance(10 * CLAIM_LEASE_MS);
    expect(await handleOnce(seen, clock, 'ev-2', async () => 1)).toEqual({ ran: false });
    await store.close();
  });
});
