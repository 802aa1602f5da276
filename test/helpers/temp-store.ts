import { afterEach } from 'vitest';
import type { Clock } from '../../src/clock.js';
import type { Job } from '../../src/jobs/job.js';
import { openJournalStore } from '../../src/store/open-store.js';
import type { Store } from '../../src/store/store.js';
import { removeDir, tempDir } from './test-app.js';

/** Opens journal stores in temp dirs; each is closed and its dir removed after the test. */
export function tempStores(): (clock: Clock) => Promise<Store> {
  const opened: Array<{ store: Store; dir: string }> = [];
  afterEach(async () => {
    for (const { store, dir } of opened.splice(0)) {
      await store.close();
      await removeDir(dir);
    }
  });
  return async (clock) => {
    const dir = await tempDir();
    const store = await openJournalStore({ dir, clock });
    opened.push({ store, dir });
    return store;
  };
}

/** A task-sync job just accepted: every record still without a result. */
export function queuedJob(id: string, records: string[], webhookUrl = 'http://127.0.0.1:9/hooks/x'): Job {
  const now = new Date().toISOString();
  return { id, mode: 'batch', webhookUrl, records, timeoutSec: 5, status: 'queued', results: records.map(() => null), createdAt: now, updatedAt: now, completedAt: null };
}
