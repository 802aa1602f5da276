import { Agent, request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN, waitFor, waitForJob } from './helpers/test-app.js';

/** POSTs JSON over a keep-alive agent that never drops an idle socket itself (unlike fetch's 4 s). */
function postKeepAlive(url: string, body: unknown, agent: Agent): Promise<{ status: number; json: any }> {
  const raw = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(raw) } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(raw);
  });
}

let upstream: FakeUpstream | undefined;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await upstream?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

describe('SIGTERM with upstream calls stuck', () => {
  it('stops within TASK_SYNC_STOP_GRACE_MS with exit 0, and the cut records are sent again on the next start', async () => {
    // First life: every call hangs (and one drips) far beyond the stop's grace. Second life: all answer.
    let stuck = true;
    upstream = await startFakeUpstream((call) => {
      if (!stuck) return { status: 200 };
      return call.body.recordId === 'r-0' ? { status: 200, drip: { everyMs: 100, bytes: 1200 } } : { hang: true };
    });
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const env = {
      DATA_DIR: dataDir,
      API_TOKENS: TOKEN,
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_CONCURRENCY: '4',
      TASK_SYNC_CONCURRENCY_PER_HOST: '4',
      TASK_SYNC_STOP_GRACE_MS: '500',
    };
    const first = await spawnService(env);
    procs.push(first);
    // A client waiting on a single record whose call is stuck: it gets its answer, and its
    // keep-alive connection, idle from then on, does not hold the stop.
    const agent = new Agent({ keepAlive: true });
    const waiting = postKeepAlive(`${first.url}/api/task-sync`, { webhookUrl: `${upstream.url}/hooks/s`, recordId: 'single', timeout: 120 }, agent);
    await waitFor(() => upstream!.inFlight === 1);
    const records = ['r-0', 'r-1', 'r-2', 'r-3', 'r-4'];
    const res = await api(first.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/s`, records, timeout: 120 } });
    expect(res.status).toBe(202);
    await waitFor(() => upstream!.inFlight === 4);

    const signalled = Date.now();
    expect(await first.kill('SIGTERM')).toBe(0);
    // The contract is a time bound: the grace (500 ms) and a margin, far below a keep-alive's 5 s.
    expect(Date.now() - signalled).toBeLessThan(3_000);
    agent.destroy();
    const single = await waiting;
    expect(single.status).toBe(202);
    expect(single.json.status).toBe('running');
    expect(first.output()).toMatch(/task-sync calls still running at stop: cut/);
    expect(first.output()).toMatch(/"msg":"stopped"/);
    expect(first.output()).not.toMatch(/stop took too long/);
    await waitFor(() => upstream!.calls.every((c) => c.cutAt !== undefined)); // we hung up on every stuck call

    stuck = false;
    const second = await spawnService(env);
    procs.push(second);
    expect(second.output()).toMatch(/"resumedJobs":2/);
    expect((await waitForJob(second.url, single.json.jobId, 20_000)).status).toBe('success');
    const done = await waitForJob(second.url, res.json.jobId, 20_000);
    expect(done.status).toBe('success');
    expect(done.results.map((r: any) => r.recordId).sort()).toEqual(records);
    // The cut ones were not recorded as anything in the first life: each is sent again.
    for (const r of ['r-0', 'r-1', 'r-2']) expect(upstream.callsFor(r)).toHaveLength(2);
    for (const r of ['r-3', 'r-4']) expect(upstream.callsFor(r)).toHaveLength(1);
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
