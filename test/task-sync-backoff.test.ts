import { afterEach, describe, expect, it } from 'vitest';
import { backoffDelay } from '../src/backoff.js';
import type { Clock } from '../src/clock.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { Job } from '../src/jobs/job.js';
import { TaskSyncWorker } from '../src/jobs/worker.js';
import { silentLogger } from '../src/log.js';
import { openJournalStore } from '../src/store/open-store.js';
import type { Store } from '../src/store/store.js';
import { createUpstreamClient, type UpstreamClient } from '../src/upstream/client.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

/** A clock whose sleeps return at once and are written down: the delays are what we assert. */
function recordingClock(): Clock & { slept: number[] } {
  const slept: number[] = [];
  return { slept, now: () => Date.now(), sleep: async (ms) => void slept.push(ms) };
}

let upstream: FakeUpstream | undefined;
let store: Store | undefined;
let client: UpstreamClient | undefined;
let dir: string | undefined;

afterEach(async () => {
  await client?.close();
  await store?.close();
  await upstream?.close();
  if (dir) await removeDir(dir);
  upstream = store = client = dir = undefined;
});

async function runOneRecord(o: { retries: number; retryBaseMs: number; random: () => number; answers: number[] }) {
  const fake = (upstream = await startFakeUpstream((_call, nth) => ({ status: o.answers[nth - 1] ?? 200 })));
  dir = await tempDir();
  const clock = recordingClock();
  store = await openJournalStore({ dir, clock });
  client = createUpstreamClient({ connectTimeoutMs: 1000, verifySsl: true });
  const jobs = store.collection<Job>('jobs');
  const worker = new TaskSyncWorker({
    jobs,
    upstream: client,
    clock,
    logger: silentLogger(),
    concurrency: { concurrency: 2, perClient: 2, perHost: 2 },
    bounds: { maxRecords: 100, maxBytes: 100_000, maxRecordsPerClient: 100, maxBytesPerClient: 100_000 },
    ...o,
  });
  const now = new Date().toISOString();
  const job: Job = {
    id: 'job-backoff',
    mode: 'batch',
    webhookUrl: `${fake.url}/hooks/x`,
    records: ['r1'],
    timeoutSec: 5,
    status: 'queued',
    results: [null],
    createdAt: now,
    updatedAt: now,
    completedAt: null,
  };
  await jobs.put(job);
  worker.submit(job);
  const done = await waitFor(async () => {
    const j = await jobs.get(job.id);
    return j?.completedAt ? j : undefined;
  });
  return { job: done, slept: clock.slept, calls: fake.calls.length };
}

describe('task-sync retries and backoff', () => {
  it('TASK_SYNC_RETRIES counts extra tries: 2 retries → 3 calls, waiting base·2^(n-1) with equal jitter', async () => {
    // random() = 0: each wait is the lower half of its ceiling, c/2 with c = 100, 200.
    const low = await runOneRecord({ retries: 2, retryBaseMs: 100, random: () => 0, answers: [503, 503, 503, 503] });
    expect(low.calls).toBe(3);
    expect(low.job.results[0]).toMatchObject({ status: 'error', httpStatus: 503, attempts: 3 });
    expect(low.slept).toEqual([50, 100]);
  });

  it('waits the full ceiling when the jitter is at its top, and succeeds on a later try', async () => {
    const high = await runOneRecord({ retries: 3, retryBaseMs: 100, random: () => 1, answers: [503, 429, 500, 200] });
    expect(high.calls).toBe(4);
    expect(high.job.results[0]).toMatchObject({ status: 'success', attempts: 4 });
    expect(high.slept).toEqual([100, 200, 400]);
  });

  it('retries 0 means one call and no wait; a 4xx is never retried', async () => {
    const none = await runOneRecord({ retries: 0, retryBaseMs: 100, random: () => 0.5, answers: [503] });
    expect(none.calls).toBe(1);
    expect(none.slept).toEqual([]);
    expect(none.job.results[0]).toMatchObject({ status: 'error', attempts: 1 });
  });

  it('does not retry an answer that is final (400)', async () => {
    const final = await runOneRecord({ retries: 5, retryBaseMs: 100, random: () => 0.5, answers: [400] });
    expect(final.calls).toBe(1);
    expect(final.slept).toEqual([]);
  });
});

describe('backoffDelay', () => {
  it('doubles per attempt from the base, with the jitter between half and all of the ceiling, capped', () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, 500, 30_000, () => 0))).toEqual([250, 500, 1000, 2000]);
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, 500, 30_000, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(3, 500, 30_000, () => 0.5)).toBe(1500);
    expect(backoffDelay(20, 500, 30_000, () => 1)).toBe(30_000);
    expect(backoffDelay(20, 500, 30_000, () => 0)).toBe(15_000);
  });
});

describe('TASK_SYNC_RETRIES', () => {
  it('defaults to 2 extra tries, allows 0, and refuses a negative count naming the variable', () => {
    expect(loadConfig({}).taskSync.retries).toBe(2);
    expect(loadConfig({ TASK_SYNC_RETRIES: '0' }).taskSync.retries).toBe(0);
    expect(() => loadConfig({ TASK_SYNC_RETRIES: '-1' })).toThrow(ConfigError);
    expect(() => loadConfig({ TASK_SYNC_RETRIES: '-1' })).toThrow(/TASK_SYNC_RETRIES: expected a whole number from 0 to 10/);
  });
});
