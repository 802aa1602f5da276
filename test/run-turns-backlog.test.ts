import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it, vi } from 'vitest';
import { systemClock } from '../src/clock.js';
import type { RunWakeup } from '../src/flows/run-wakeups.js';
import { firstTurnHeld, runTurnsOn } from './helpers/run-turns.js';
import { tempStores } from './helpers/temp-store.js';
import { waitFor } from './helpers/test-app.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const openStore = tempStores();

/** Heap in use once the pending callbacks ran and garbage is gone. */
async function heapUsed(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

describe('RunTurns: asking for turns', () => {
  it('holds 10,000 waiting runs in under 768 bytes each: a waiting run is its id and what was asked, not a suspended turn', async () => {
    // Before, each waiting run was an async turn suspended on the slot, with its promise chain
    // and contexts: about 1.6 KB a run here (260 bytes now), more when scheduled from a request,
    // all of it promoted and copied by the scavenges during an intake burst.
    const { turns, advanced, release } = firstTurnHeld(await openStore(systemClock), 1);
    turns.schedule('run-0');
    await waitFor(() => advanced.length === 1);

    const before = await heapUsed();
    const N = 10_000;
    for (let i = 1; i <= N; i++) turns.schedule(`run-${i}`, { news: true });
    const perRun = ((await heapUsed()) - before) / N;
    expect(perRun, `${perRun.toFixed(0)} bytes of heap per waiting run`).toBeLessThan(768);

    // Draining 10,000 turns is not this test's business (the next one drains): stop first.
    turns.beginStop();
    release();
    await turns.idle();
    expect(advanced).toEqual(['run-0']);
  });

  it('joins requests made in the same tick into one turn, and ends a mark claimed twice once', async () => {
    const store = await openStore(systemClock);
    const removes = vi.spyOn(store.collection<RunWakeup>('run-wakeups'), 'remove');
    const advanced: string[] = [];
    const turns = runTurnsOn(store, async (runId) => void advanced.push(runId), 1000);
    // What sweep() does with two stale marks of one run, then the first claimed again.
    turns.schedule('run-r', { claimed: ['stale-1'] });
    turns.schedule('run-r', { claimed: ['stale-2'] });
    turns.schedule('run-r', { claimed: ['stale-1'] });
    await turns.idle();
    expect(advanced, 'one turn').toEqual(['run-r']);
    const ended = removes.mock.calls.map(([id]) => id);
    expect(ended.filter((id) => id === 'stale-1'), 'stale-1 ended once').toHaveLength(1);
    expect(ended).toContain('stale-2');
    await turns.stop();
  });

  it('gives a run asked again while its turn runs one more turn after it, and lets other runs take the free slots meanwhile', async () => {
    const { turns, advanced, release } = firstTurnHeld(await openStore(systemClock), 2);
    turns.schedule('run-a');
    await waitFor(() => advanced.length === 1);
    turns.schedule('run-a', { news: true });
    turns.schedule('run-a', { news: true });
    turns.schedule('run-b');
    await waitFor(() => advanced.length === 2);
    expect(advanced, 'run-b takes the second slot; run-a waits for its own turn to end').toEqual(['run-a', 'run-b']);
    let idle = false;
    const whenIdle = turns.idle().then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(idle, 'idle() waits for the turn still asked').toBe(false);
    release();
    await whenIdle;
    expect(advanced, 'the two asks joined: one more turn').toEqual(['run-a', 'run-b', 'run-a']);
    await turns.stop();
  });
});
