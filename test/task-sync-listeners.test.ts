import { expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import type { Job } from '../src/jobs/job.js';
import { TaskSyncWorker } from '../src/jobs/worker.js';
import { silentLogger } from '../src/log.js';
import type { UpstreamClient } from '../src/upstream/client.js';
import { queuedJob, tempStores } from './helpers/temp-store.js';
import { waitFor } from './helpers/test-app.js';

const openStore = tempStores();

it('many calls and retry backoffs at once print no MaxListenersExceededWarning (a line outside the JSON log)', async () => {
  const store = await openStore(systemClock);
  const jobs = store.collection<Job>('jobs');
  let calls = 0;
  const held: Array<() => void> = [];
  const upstream = {
    // Each call listens on the worker's cancel signal while it runs, then fails retryably: its retry sleeps on the stop signal.
    postJson: async (_u: string, _b: unknown, _h: unknown, _d: number, _k: unknown, signal?: AbortSignal) => {
      calls++;
      signal?.addEventListener('abort', () => undefined);
      await new Promise<void>((r) => held.push(r));
      return { kind: 'failure', retryable: true, error: 'HTTP 503', durationMs: 1 } as const;
    },
    get: async () => {
      throw new Error('unused');
    },
    close: async () => undefined,
  } as unknown as UpstreamClient;
  const worker = new TaskSyncWorker({
    jobs,
    upstream,
    clock: systemClock,
    logger: silentLogger(),
    concurrency: { concurrency: 30, perClient: 30, perHost: 30 },
    bounds: { maxRecords: 100, maxBytes: 100_000, maxRecordsPerClient: 100, maxBytesPerClient: 100_000 },
    retries: 1,
    retryBaseMs: 60_000, // the retries wait, all at once
  });
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const records = Array.from({ length: 30 }, (_, i) => `r${i}`);
    const job = queuedJob('job-many', records);
    await jobs.put(job);
    worker.submit(job);
    await waitFor(() => calls === 30);
    for (const release of held.splice(0)) release();
    await new Promise((r) => setTimeout(r, 50)); // the 30 backoffs have started; warnings are emitted on the next tick
    await worker.stop(0);
    await new Promise((r) => setImmediate(r));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  } finally {
    process.off('warning', onWarning);
  }
});
