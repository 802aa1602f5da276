import { describe, expect, it } from 'vitest';
import { YieldingSlots, type AcceptGate } from '../src/accept-first.js';
import { systemClock } from '../src/clock.js';
import type { RunStory } from '../src/flows/approval-run.js';
import { RunInbox, type CallbackResult, type InboxItem } from '../src/flows/run-inbox.js';
import { RunTurns } from '../src/flows/run-turns.js';
import type { RunWakeup } from '../src/flows/run-wakeups.js';
import type { Run } from '../src/flows/run.js';
import { silentLogger } from '../src/log.js';
import { tempStores } from './helpers/temp-store.js';
import { waitFor } from './helpers/test-app.js';

const openStore = tempStores();

describe('RunTurns: a stop', () => {
  it('starts none of the turns still queued behind the ceiling; the one running ends, and stop() does not wait for the rest', async () => {
    const store = await openStore(systemClock);
    const gate: AcceptGate = { underPressure: false, onRelief: () => undefined };
    const advanced: string[] = [];
    let finishFirst!: () => void;
    const story = {
      async advance(runId: string) {
        advanced.push(runId);
        if (runId === 'run-1') await new Promise<void>((r) => (finishFirst = r));
        return { seen: [] };
      },
    } as unknown as RunStory;
    const turns = new RunTurns(
      {
        runs: store.collection<Run>('runs'),
        inbox: new RunInbox(store.collection<InboxItem>('run-inbox'), store.keys<CallbackResult>('run-callbacks'), systemClock),
        locks: store,
        wakeups: store.collection<RunWakeup>('run-wakeups'),
        clock: systemClock,
        logger: silentLogger(),
        turnSlots: new YieldingSlots(gate, 1, 1),
      },
      story,
    );
    for (const id of ['run-1', 'run-2', 'run-3']) turns.schedule(id);
    await waitFor(() => advanced.length === 1);
    const stopped = turns.stop();
    finishFirst();
    await stopped;
    expect(advanced, 'only the turn that held the slot ran').toEqual(['run-1']);
  });
});

