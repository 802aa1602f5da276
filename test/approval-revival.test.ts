import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import type { Run } from '../src/flows/run.js';
import { openJournalStore } from '../src/store/open-store.js';
import { flowFile, startHarness, type Harness } from './helpers/approval-harness.js';
import { waitFor } from './helpers/test-app.js';

let h: Harness;
const holds: Array<() => void> = [];
afterEach(async () => {
  for (const release of holds.splice(0)) release();
  await h?.close();
});

/** A clock that never moves: every save happens "at the same millisecond". */
function frozenClock(at: number): Clock {
  return { now: () => at, sleep: () => new Promise((resolve) => setImmediate(resolve)) };
}

describe('a run brought back from the archive (Retry, late events)', () => {
  it('is the newer copy on disk even when the clock stands still, and another archive write does not undo it', async () => {
    const clock = frozenClock(Date.now()); // signatures are checked against it: now, then never again
    h = await startHarness({ clock, flow: (url) => flowFile(url, { check: undefined, execute: { url: `${url}/perm/grant`, mode: 'sync', timeoutMs: 2000, retries: 0 } }) });
    h.business.handler = (c) => ({ status: 200, body: { ticket_id: c.body.ticket_id, result: false, error: 'quota exceeded' } });
    h.newInstance('INST-R');
    await h.pendingAt('INST-R', 't-exec', 'execute_node');
    const failed = structuredClone(await h.waitForRun('INST-R', (r) => r.status === 'failed'));
    const runs = h.app.deps.store.collection<Run>('runs');
    expect(await runs.live()).toHaveLength(0); // archived

    // Retry: the run comes back to live; its business call hangs.
    h.business.handler = async () => {
      await new Promise<void>((resolve) => holds.push(resolve));
      return { status: 503 };
    };
    expect((await h.pressRetry('INST-R', 'execute')).body.toast.type).toBe('success');
    await waitFor(() => h.business.calls.length === 2);
    const revived = (await runs.live()).find((r) => r.id === 'INST-R')!;
    expect(revived.status).toBe('active');
    expect(revived.updatedAt > failed.updatedAt).toBe(true);

    // Another run is archived meanwhile.
    h.newInstance('INST-OTHER');
    await h.pendingAt('INST-OTHER', 't-x', 'manager_review');
    await waitFor(async () => (await h.run('INST-OTHER'))?.status === 'ignored');
    await h.app.deps.store.flush();

    // What a restart reads from disk: the live copy of the revived run wins over its archived copy.
    const reopened = await openJournalStore({ dir: h.app.dataDir, clock });
    const afterRestart = await reopened.collection<Run>('runs').get('INST-R');
    expect(afterRestart).toMatchObject({ status: 'active', stages: { execute: { state: 'calling', retries: 1 } } });
    expect((await reopened.collection<Run>('runs').live()).map((r) => r.id)).toEqual(['INST-R']);
  });
});
