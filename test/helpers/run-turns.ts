import { YieldingSlots, type AcceptGate } from '../../src/accept-first.js';
import { systemClock } from '../../src/clock.js';
import type { RunStory } from '../../src/flows/approval-run.js';
import { RunInbox, type CallbackResult, type InboxItem } from '../../src/flows/run-inbox.js';
import { RunTurns } from '../../src/flows/run-turns.js';
import type { RunWakeup } from '../../src/flows/run-wakeups.js';
import type { Run } from '../../src/flows/run.js';
import { silentLogger } from '../../src/log.js';
import type { Store } from '../../src/store/store.js';

/** RunTurns on a store, with a stand-in story (only `advance` is called) and `max` turns at once, no pressure. */
export function runTurnsOn(store: Store, advance: (runId: string) => Promise<unknown>, max: number): RunTurns {
  const gate: AcceptGate = { underPressure: false, onRelief: () => undefined };
  return new RunTurns(
    {
      runs: store.collection<Run>('runs'),
      inbox: new RunInbox(store.collection<InboxItem>('run-inbox'), store.keys<CallbackResult>('run-callbacks'), systemClock),
      locks: store,
      wakeups: store.collection<RunWakeup>('run-wakeups'),
      clock: systemClock,
      logger: silentLogger(),
      turnSlots: new YieldingSlots(gate, 1, max),
    },
    {
      advance: async (runId: string) => {
        await advance(runId);
        return { seen: [] };
      },
    } as unknown as RunStory,
  );
}

/** RunTurns (as runTurnsOn) whose first turn holds its slot until release(); `advanced` lists the turns started. */
export function firstTurnHeld(store: Store, max: number): { turns: RunTurns; advanced: string[]; release: () => void } {
  const advanced: string[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const turns = runTurnsOn(
    store,
    async (runId) => {
      advanced.push(runId);
      if (advanced.length === 1) await held;
    },
    max,
  );
  return { turns, advanced, release };
}
