import { afterEach, describe, expect, it } from 'vitest';
import { FairQueue, type FairTask } from '../src/jobs/fair-queue.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitFor, waitForJob, type TestApp } from './helpers/test-app.js';

const upstreams: FakeUpstream[] = [];
let app: TestApp | undefined;

afterEach(async () => {
  await app?.deps.worker.stop(0); // cut the hung calls now rather than after the stop's grace
  await app?.stop();
  if (app) await removeDir(app.dataDir);
  for (const u of upstreams.splice(0)) await u.close();
  app = undefined;
});

async function upstream(handler: ConstructorParameters<typeof FakeUpstream>[0]): Promise<FakeUpstream> {
  const u = await startFakeUpstream(handler);
  upstreams.push(u);
  return u;
}

const records = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('fair share of TASK_SYNC_CONCURRENCY', () => {
  it("one token's hung upstream holds at most its share; another token's single record finishes meanwhile", async () => {
    const u = await upstream((call) => (call.path === '/hooks/hung' ? { hang: true } : { status: 200 }));
    // Two tokens: each may hold half of the 4 slots (the default with several tokens).
    app = await startTestApp({ API_TOKENS: 'tok-a,tok-b', TASK_SYNC_CONCURRENCY: '4', TASK_SYNC_ALLOWED_URLS: `${u.url}/hooks/` });
    const hung = await api(app.url, '/api/task-sync', { token: 'tok-a', body: { webhookUrl: `${u.url}/hooks/hung`, records: records('a', 20), timeout: 60 } });
    expect(hung.status).toBe(202);
    await waitFor(() => u.inFlight === 2);

    // Its timeout bounds how long the answer waits for it: a starved record would come back 202 "queued".
    const other = await api(app.url, '/api/task-sync', { token: 'tok-b', body: { webhookUrl: `${u.url}/hooks/ok`, recordId: 'b-1', timeout: 1 } });
    expect(other.status).toBe(200);
    expect(other.json).toMatchObject({ status: 'success', results: [{ recordId: 'b-1', status: 'success' }] });

    // All the while, token A's calls were stuck and never held more than its share.
    expect(u.calls.filter((c) => c.path === '/hooks/hung')).toHaveLength(2);
    expect(u.calls.filter((c) => c.path === '/hooks/hung').every((c) => c.cutAt === undefined)).toBe(true);
    expect((await api(app.url, `/api/task-sync/status/${hung.json.jobId}`, { token: 'tok-a' })).json.status).toBe('running');
  });

  it('clients take turns: with one slot, two tokens with work alternate call by call', async () => {
    let openGate!: () => void;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    // The first call is held until both jobs are queued, so the order below does not depend on timing.
    const u = await upstream(async (_call, nth) => {
      if (nth === 1) await gate;
      return { status: 200 };
    });
    app = await startTestApp({ API_TOKENS: 'tok-a,tok-b', TASK_SYNC_CONCURRENCY: '1', TASK_SYNC_ALLOWED_URLS: `${u.url}/hooks/` });
    const a = await api(app.url, '/api/task-sync', { token: 'tok-a', body: { webhookUrl: `${u.url}/hooks/a`, records: records('a', 6) } });
    await waitFor(() => u.calls.length === 1);
    const b = await api(app.url, '/api/task-sync', { token: 'tok-b', body: { webhookUrl: `${u.url}/hooks/b`, records: records('b', 6) } });
    openGate();
    await waitForJob(app.url, a.json.jobId, 10_000, 'tok-a');
    await waitForJob(app.url, b.json.jobId, 10_000, 'tok-b');
    const order = u.calls.map((c) => c.path.slice(-1)).join('');
    // A was alone when its first call started, so its turn comes once more before B's (B joined
    // the turn order behind it); from then on they alternate until A has nothing left.
    expect(order).toBe(`aa${'ba'.repeat(4)}bb`);
  });

  it('TASK_SYNC_CONCURRENCY_PER_HOST: a hung host holds at most its cap; a job to another host of the same token goes on', async () => {
    const hungHost = await upstream(() => ({ hang: true }));
    const okHost = await upstream(() => ({ status: 200 }));
    app = await startTestApp({
      TASK_SYNC_CONCURRENCY: '4',
      TASK_SYNC_CONCURRENCY_PER_HOST: '2',
      TASK_SYNC_ALLOWED_URLS: `${hungHost.url}/hooks/,${okHost.url}/hooks/`,
    });
    await api(app.url, '/api/task-sync', { body: { webhookUrl: `${hungHost.url}/hooks/x`, records: records('h', 10), timeout: 60 } });
    await waitFor(() => hungHost.inFlight === 2);
    const other = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${okHost.url}/hooks/y`, records: records('o', 5), timeout: 1 } });
    const job = await waitForJob(app.url, other.json.jobId);
    expect(job.status).toBe('success');
    expect(hungHost.calls).toHaveLength(2);
    expect(hungHost.maxInFlight).toBe(2);
  });
});

describe('FairQueue', () => {
  /** Tasks that end when the test says so, writing down the order they started in. */
  function harness(limits: { concurrency: number; perClient: number; perHost: number }) {
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const queue = new FairQueue(limits, (err) => {
      throw err;
    });
    const add = (client: string, host: string, group: string, name: string) => {
      const task: FairTask = {
        client,
        host,
        group,
        run: () =>
          new Promise<void>((resolve) => {
            started.push(name);
            finish.set(name, resolve);
          }),
      };
      queue.add(task);
    };
    const end = async (name: string) => {
      finish.get(name)!();
      await new Promise((r) => setImmediate(r));
    };
    return { queue, started, add, end };
  }

  it('round-robins between clients, then between the jobs of a client', async () => {
    const h = harness({ concurrency: 1, perClient: 1, perHost: 1 });
    h.add('Z', 'h', 'z', 'Z'); // holds the one slot while the others queue up
    h.add('A', 'h', 'j1', 'A1a');
    h.add('A', 'h', 'j1', 'A1b');
    h.add('A', 'h', 'j2', 'A2a');
    h.add('B', 'h', 'k1', 'B1a');
    h.add('B', 'h', 'k1', 'B1b');
    for (const name of ['Z', 'A1a', 'B1a', 'A2a', 'B1b', 'A1b']) await h.end(name);
    expect(h.started).toEqual(['Z', 'A1a', 'B1a', 'A2a', 'B1b', 'A1b']);
    expect(h.queue.size).toBe(0);
    expect(h.queue.pending).toBe(0);
  });

  it('never runs more than perClient for a client or perHost for a host, and fills the rest with others', async () => {
    const h = harness({ concurrency: 4, perClient: 2, perHost: 3 });
    for (let i = 0; i < 5; i++) h.add('A', 'x', 'j', `A${i}`);
    for (let i = 0; i < 5; i++) h.add('B', 'x', 'k', `B${i}`);
    for (let i = 0; i < 5; i++) h.add('C', 'y', 'l', `C${i}`);
    // A: 2 (its cap), B: 1 (host x is then at 3), C: 1 (the last slot).
    expect(h.started.sort()).toEqual(['A0', 'A1', 'B0', 'C0']);
    h.queue.pause();
    await h.end('A0');
    expect(h.started).toHaveLength(4); // paused: nothing new starts
    h.queue.clear();
    expect(h.queue.size).toBe(0);
    const idle = h.queue.onIdle();
    for (const n of ['A1', 'B0', 'C0']) await h.end(n);
    await idle;
  });
});
