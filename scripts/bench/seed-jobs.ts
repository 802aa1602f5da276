// Fills a data dir with N finished task-sync jobs, as the service would have archived them.
import { systemClock } from '../../src/clock.js';
import type { Job } from '../../src/jobs/job.js';
import { openJournalStore } from '../../src/store/open-store.js';

export async function seedFinishedJobs(dataDir: string, count: number): Promise<void> {
  const store = await openJournalStore({ dir: dataDir, clock: systemClock, log: { warn: (m) => console.warn(m), info: () => undefined } });
  const jobs = store.collection<Job>('jobs');
  const now = new Date().toISOString();
  const chunk = 500;
  for (let start = 0; start < count; start += chunk) {
    const writes: Promise<void>[] = [];
    for (let i = start; i < Math.min(count, start + chunk); i++) {
      const id = `seed-${i.toString().padStart(7, '0')}`;
      writes.push(
        jobs.archive({
          id,
          mode: 'batch',
          webhookUrl: 'http://127.0.0.1:9/hooks/seed',
          records: [`rec-${i}`],
          timeoutSec: 15,
          status: 'success',
          results: [{ recordId: `rec-${i}`, status: 'success', httpStatus: 200, durationMs: 12, attempts: 1, response: '{"code":0}' }],
          createdAt: now,
          updatedAt: now,
          completedAt: now,
        }),
      );
    }
    await Promise.all(writes);
  }
  // Into segments and a snapshot, as a long-running service would have them by now.
  await store.compact();
  await store.close();
}
