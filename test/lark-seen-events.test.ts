import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { CLAIM_LEASE_MS, handleOnce, type SeenMark } from '../src/lark/seen-events.js';
import { openJournalStore as openStore } from '../src/store/open-store.js';
import type { KeySpace } from '../src/store/store.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

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

describe('handleOnce: what it records', () => {
  async function open() {
    const dir = await tempDir();
    dirs.push(dir);
    const clock = steppingClock();
    const store = await openStore({ dir, clock });
    return { clock, store, seen: store.keys<SeenMark>('lark-events') };
  }
  const never = () => new Promise<never>(() => undefined);

  it('claims the id with the time before the work, and marks it done with that time after', async () => {
    const { clock, store, seen } = await open();
    const t0 = clock.now();
    let during: SeenMark | undefined;
    expect(await handleOnce(seen, clock, 'ev-3', async () => (during = await seen.get('ev-3')))).toEqual({ ran: true, result: { state: 'claimed', at: t0 } });
    expect(during).toEqual({ state: 'claimed', at: t0 });
    await store.flush();
    expect(await seen.get('ev-3')).toEqual({ state: 'done', at: t0 });
    await store.close();
  });

  it('does not take over a claim exactly one lease old', async () => {
    const { clock, store, seen } = await open();
    void handleOnce(seen, clock, 'ev-4', never); // the handler that never finishes
    await store.flush();
    clock.advance(CLAIM_LEASE_MS);
    expect(await handleOnce(seen, clock, 'ev-4', async () => 'late')).toEqual({ ran: false });
    clock.advance(1);
    expect(await handleOnce(seen, clock, 'ev-4', async () => 'late')).toEqual({ ran: true, result: 'late' });
    await store.close();
  });

  it('takes a stale claim over with a fresh one, which holds for a lease of its own', async () => {
    const { clock, store, seen } = await open();
    void handleOnce(seen, clock, 'ev-5', never);
    await store.flush();
    clock.advance(CLAIM_LEASE_MS + 1);
    const t1 = clock.now();
    void handleOnce(seen, clock, 'ev-5', never); // takes over, and dies too
    // The takeover is three store steps (claim, read, set): wait for its claim to be there.
    await waitFor(async () => ((await seen.get('ev-5')) as { at?: number } | undefined)?.at === t1);
    await store.flush();
    expect(await seen.get('ev-5')).toEqual({ state: 'claimed', at: t1 });
    clock.advance(CLAIM_LEASE_MS);
    expect(await handleOnce(seen, clock, 'ev-5', async () => 'third')).toEqual({ ran: false });
    clock.advance(1);
    expect(await handleOnce(seen, clock, 'ev-5', async () => 'third')).toEqual({ ran: true, result: 'third' });
    await store.close();
  });

  it('gives the claim back when the work fails, so the redelivery runs', async () => {
    const { clock, store, seen } = await open();
    await expect(handleOnce(seen, clock, 'ev-6', async () => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full');
    expect(await seen.get('ev-6')).toBeUndefined();
    expect(await handleOnce(seen, clock, 'ev-6', async () => 'again')).toEqual({ ran: true, result: 'again' });
    await store.close();
  });

  it('drops a delivery whose claim was lost and whose mark is already gone (the other delivery failed meanwhile)', async () => {
    const clock = steppingClock();
    const gone: KeySpace<SeenMark> = {
      claim: async () => false,
      get: async () => undefined,
      set: async () => undefined,
      delete: async () => undefined,
      size: async () => 0,
    };
    let runs = 0;
    expect(await handleOnce(gone, clock, 'ev-7', async () => ++runs)).toEqual({ ran: false });
    expect(runs).toBe(0);
  });
});
