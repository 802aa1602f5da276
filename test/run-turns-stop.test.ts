import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import { firstTurnHeld } from './helpers/run-turns.js';
import { tempStores } from './helpers/temp-store.js';
import { waitFor } from './helpers/test-app.js';

const openStore = tempStores();

describe('RunTurns: a stop', () => {
  it('starts none of the turns still queued behind the ceiling once it begins; the one running ends, and stop() does not wait for the rest', async () => {
    const { turns, advanced, release: finishFirst } = firstTurnHeld(await openStore(systemClock), 1);
    for (const id of ['run-1', 'run-2', 'run-3']) turns.schedule(id);
    await waitFor(() => advanced.length === 1);
    // What main's SIGTERM handler does first (engine.beginStop), before the worker's grace.
    turns.beginStop();
    finishFirst();
    await turns.idle();
    expect(advanced, 'only the turn that held the slot ran').toEqual(['run-1']);
    await turns.stop();
  });
});
