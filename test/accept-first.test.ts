import { describe, expect, it } from 'vitest';
import { AcceptFirst, YieldingSlots, type AcceptGate } from '../src/accept-first.js';
import { FairQueue, type FairTask } from '../src/jobs/fair-queue.js';
import type { Job } from '../src/jobs/job.js';
import { TaskSyncWorker } from '../src/jobs/worker.js';
import { silentLogger } from '../src/log.js';
import type { UpstreamClient } from '../src/upstream/client.js';
import { queuedJob, tempStores } from './helpers/temp-store.js';
import { waitFor } from './helpers/test-app.js';

/** A gate driven by hand: the loop's utilisation is whatever the test says. */
function handGate(busyAbove = 0.5) {
  const s = { util: 0 };
  const gate = new AcceptFirst({ windowMs: 100, minRequests: 3, busyAbove, utilisation: () => s.util });
  const requests = (n: number) => {
    for (let i = 0; i < n; i++) gate.requestSeen();
  };
  return { gate, s, requests };
}

describe('AcceptFirst: pressure is a burst of requests on a busy loop', () => {
  it('is under pressure only when at least minRequests arrived in the window and the loop was busy at or above the threshold', () => {
    const { gate, s, requests } = handGate();
    s.util = 0.9;
    gate.sample();
    expect(gate.underPressure, 'busy, but no request').toBe(false);
    requests(2);
    gate.sample();
    expect(gate.underPressure, 'busy, two requests: a poller, not a burst').toBe(false);
    requests(3);
    s.util = 0.49;
    gate.sample();
    expect(gate.underPressure, 'a burst, the loop not busy enough').toBe(false);
    requests(3);
    s.util = 0.5;
    gate.sample();
    expect(gate.underPressure, 'a burst at the threshold').toBe(true);
    gate.sample();
    expect(gate.underPressure, 'each window counts its own requests').toBe(false);
  });

  it('tells its listeners once on the way out of pressure, not while it lasts nor when there was none', () => {
    const { gate, s, requests } = handGate();
    let reliefs = 0;
    gate.onRelief(() => reliefs++);
    gate.sample();
    expect(reliefs).toBe(0);
    s.util = 1;
    requests(3);
    gate.sample();
    requests(3);
    gate.sample();
    expect(reliefs).toBe(0);
    requests(3);
    s.util = 0.1;
    gate.sample();
    expect(reliefs).toBe(1);
    gate.sample();
    expect(reliefs).toBe(1);
  });

  it('a stop lifts the pressure and tells the listeners (a stopping worker is not left throttled)', () => {
    const { gate, s, requests } = handGate();
    let reliefs = 0;
    gate.onRelief(() => reliefs++);
    s.util = 1;
    requests(3);
    gate.sample();
    expect(gate.underPressure).toBe(true);
    gate.stop();
    expect(gate.underPressure).toBe(false);
    expect(reliefs).toBe(1);
  });

  it('judges the real event loop on its timer: a loop kept busy while requests arrive is pressure', async () => {
    const gate = new AcceptFirst({ windowMs: 20, minRequests: 1 });
    gate.start();
    try {
      let seen = false;
      const until = performance.now() + 2_000;
      while (!seen && performance.now() < until) {
        const busyUntil = performance.now() + 30;
        while (performance.now() < busyUntil) {
          /* keep the loop busy */
        }
        gate.requestSeen();
        await new Promise((r) => setImmediate(r));
        seen = gate.underPressure;
      }
      expect(seen).toBe(true);
      await new Promise((r) => setTimeout(r, 80)); // idle, no requests
      expect(gate.underPressure).toBe(false);
    } finally {
      gate.stop();
    }
  });
});

describe('YieldingSlots (approval run turns)', () => {
  it('lets any number run without pressure, at most `burst` under it, in arrival order, and all waiters once the pressure ends', async () => {
    let pressure = false;
    const relief: Array<() => void> = [];
    const gate: AcceptGate = { get underPressure() { return pressure; }, onRelief: (l) => void relief.push(l) };
    const slots = new YieldingSlots(gate, 2);
    const acquire = () => new Promise<void>((resolve) => slots.whenFree(resolve));
    for (let i = 0; i < 3; i++) await acquire();
    expect(slots.running).toBe(3);
    pressure = true;
    const started: number[] = [];
    const waiters = [0, 1, 2, 3].map((n) => acquire().then(() => started.push(n)));
    await new Promise((r) => setImmediate(r));
    expect(started, 'three run, the burst is two: nobody starts').toEqual([]);
    slots.release();
    slots.release();
    await new Promise((r) => setImmediate(r));
    expect(started, 'one run left: one more may start').toEqual([0]);
    expect(slots.running).toBe(2);
    slots.release();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1]);
    pressure = false;
    for (const l of relief) l();
    await Promise.all(waiters);
    expect(started).toEqual([0, 1, 2, 3]);
    expect(slots.running).toBe(4);
  });

  it('lets at most `max` run without pressure: the rest wait in arrival order and start as slots free', async () => {
    const gate: AcceptGate = { underPressure: false, onRelief: () => undefined };
    const slots = new YieldingSlots(gate, 1, 3);
    const started: number[] = [];
    [0, 1, 2, 3, 4].forEach((n) => slots.whenFree(() => started.push(n)));
    expect(started, 'the ceiling is three').toEqual([0, 1, 2]);
    expect(slots.running).toBe(3);
    slots.release();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2, 3]);
    expect(slots.running).toBe(3);
    slots.release();
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(slots.running).toBe(3);
  });
});

describe('FairQueue: the slots allowed now', () => {
  it('starts no more tasks than allowed() and fills up to the concurrency on wake() once it rises', async () => {
    let allowed = 1;
    const queue = new FairQueue({ concurrency: 4, perClient: 4, perHost: 4 }, () => undefined, () => allowed);
    const release: Array<() => void> = [];
    let running = 0;
    const task = (n: number): FairTask => ({
      client: 'c',
      host: 'h',
      group: `g${n}`,
      run: () => {
        running++;
        return new Promise<void>((r) => release.push(() => (running--, r())));
      },
    });
    for (let i = 0; i < 6; i++) queue.add(task(i));
    expect(running).toBe(1);
    allowed = 8; // above the concurrency: the concurrency still caps
    expect(running, 'nothing starts before wake()').toBe(1);
    queue.wake();
    expect(running).toBe(4);
    expect(queue.size).toBe(2);
    allowed = 1;
    release.shift()!();
    await new Promise((r) => setImmediate(r));
    expect(running, 'a freed slot is not refilled while only one is allowed').toBe(3);
    let peakAfter = 0;
    while (queue.size > 0 || running > 0) {
      for (const r of release.splice(0)) r();
      await new Promise((r) => setImmediate(r));
      peakAfter = Math.max(peakAfter, running);
    }
    expect(peakAfter, 'the last two start one at a time').toBe(1);
    await queue.onIdle();
  });
});

describe('TaskSyncWorker with the accept path first', () => {
  const openStore = tempStores();

  it('runs at most burstConcurrency calls under pressure, fills its slots on relief, and finishes every record in order of the job', async () => {
    const store = await openStore({ now: () => Date.now(), sleep: async () => undefined });
    const jobs = store.collection<Job>('jobs');
    let pressure = true;
    const relief: Array<() => void> = [];
    const gate: AcceptGate = { get underPressure() { return pressure; }, onRelief: (l) => void relief.push(l) };
    let running = 0;
    let peak = 0;
    const order: string[] = [];
    const held: Array<() => void> = [];
    const upstream = {
      postJson: async (_url: string, body: unknown) => {
        order.push((body as { recordId: string }).recordId);
        running++;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => held.push(r));
        running--;
        return { kind: 'success', httpStatus: 200, response: 'ok', durationMs: 1 } as const;
      },
      get: async () => { throw new Error('unused'); },
      close: async () => undefined,
    } as unknown as UpstreamClient;
    const worker = new TaskSyncWorker({
      jobs,
      upstream,
      clock: { now: () => Date.now(), sleep: async () => undefined },
      logger: silentLogger(),
      concurrency: { concurrency: 8, perClient: 8, perHost: 8 },
      bounds: { maxRecords: 100, maxBytes: 100_000, maxRecordsPerClient: 100, maxBytesPerClient: 100_000 },
      retries: 0,
      retryBaseMs: 1,
      acceptFirst: { gate, burstConcurrency: 2 },
    });
    const records = Array.from({ length: 20 }, (_, i) => `r${i}`);
    const job = queuedJob('job-burst', records);
    await jobs.put(job);
    worker.submit(job);
    try {
      await waitFor(() => running === 2);
      for (let i = 0; i < 4; i++) {
        held.shift()!();
        await waitFor(() => held.length === 2);
      }
      expect(peak, 'under pressure').toBe(2);
      pressure = false;
      for (const l of relief) l();
      await waitFor(() => running === 8);
      expect(peak).toBe(8);
      while (order.length < 20 || held.length) {
        held.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
      const done = await waitFor(async () => {
        const j = await jobs.get(job.id);
        return j?.status === 'success' ? j : undefined;
      });
      expect(done.results.map((r) => r?.recordId)).toEqual(records);
      expect(order).toEqual(records); // started in order
    } finally {
      await worker.stop(0);
    }
  });
});
