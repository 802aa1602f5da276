import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/clock.js';
import type { Job } from '../src/jobs/job.js';
import { TaskSyncWorker } from '../src/jobs/worker.js';
import { silentLogger } from '../src/log.js';
import { requestContext, type RequestContext } from '../src/request-context.js';
import type { UpstreamClient } from '../src/upstream/client.js';
import { runTurnsOn } from './helpers/run-turns.js';
import { queuedJob, tempStores } from './helpers/temp-store.js';
import { waitFor } from './helpers/test-app.js';

// Work a request starts outlives it. It must not run in the request's async context: that would
// keep the request's stores alive (our log context, Sentry's isolation scope with the headers and
// body) until the work ends, and log the work as that request, or as whichever request started
// the queue's previous task (src/detached.ts).
const openStore = tempStores();
const asRequest = (reqId: string, fn: () => void) => requestContext.run({ reqId, method: 'POST', path: '/x', client: `client-of-${reqId}` } satisfies RequestContext, fn);

describe('background work runs outside the request that started it', () => {
  it('task-sync records: the upstream call sees no request context, whichever request queued it', async () => {
    const store = await openStore(systemClock);
    const seen: Array<RequestContext | undefined> = [];
    const upstream: UpstreamClient = {
      postJson: async () => {
        seen.push(requestContext.getStore());
        return { kind: 'success', httpStatus: 200, response: '{}', durationMs: 1 };
      },
      get: async () => Promise.reject(new Error('not used')),
      close: async () => undefined,
    };
    const jobs = store.collection<Job>('jobs');
    const worker = new TaskSyncWorker({
      jobs,
      upstream,
      clock: systemClock,
      logger: silentLogger(),
      concurrency: { concurrency: 1, perClient: 1, perHost: 1 },
      bounds: { maxRecords: 10, maxBytes: 100_000, maxRecordsPerClient: 10, maxBytesPerClient: 100_000 },
      retries: 0,
      retryBaseMs: 1,
    });
    try {
      for (const [i, reqId] of ['req-0', 'req-1', 'req-2'].entries()) {
        const job = queuedJob(`job-${i}`, [`rec-${i}`]);
        await jobs.put(job);
        asRequest(reqId, () => worker.submit(job));
      }
      await waitFor(() => seen.length === 3);
      expect(seen).toEqual([undefined, undefined, undefined]);
    } finally {
      await worker.stop(0);
    }
  });

  it('approval run turns: a turn scheduled while a request is handled runs without its context', async () => {
    const store = await openStore(systemClock);
    const seen: Array<RequestContext | undefined> = [];
    const turns = runTurnsOn(store, async () => void seen.push(requestContext.getStore()), 1);
    asRequest('event-req-1', () => turns.schedule('run-1'));
    asRequest('event-req-2', () => turns.schedule('run-2'));
    await waitFor(() => seen.length === 2);
    await turns.stop();
    expect(seen).toEqual([undefined, undefined]);
  });
});
