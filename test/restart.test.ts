import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, startTestApp, tempDir, TOKEN, waitFor, waitForJob } from './helpers/test-app.js';

let upstream: FakeUpstream;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await upstream?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

const records = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** POSTs a batch and SIGKILLs the service as soon as the answer's status line arrives; resolves with status and job id. */
function postThenKill(service: ServiceProcess, body: unknown): Promise<{ status: number; jobId: string }> {
  const raw = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${service.url}/api/task-sync`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(raw)) } }, (res) => {
      service.child.kill('SIGKILL'); // no graceful stop: whatever is not on disk now is lost
      res.resume();
      const location = String(res.headers.location ?? '');
      resolve({ status: res.statusCode ?? 0, jobId: location.slice(location.lastIndexOf('/') + 1) });
    });
    req.on('error', reject);
    req.end(raw);
  });
}

describe('crash and restart', () => {
  it('loses no 202-ed job when the process is killed with SIGKILL mid-batch', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 120 }));
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const env = {
      DATA_DIR: dataDir,
      API_TOKENS: TOKEN,
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_CONCURRENCY: '2',
    };
    const first = await spawnService(env);
    procs.push(first);
    const jobs: Array<{ id: string; records: string[] }> = [];
    for (const name of ['a', 'b', 'c']) {
      const recs = records(name, 8);
      const res = await api(first.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/${name}`, records: recs } });
      expect(res.status).toBe(202);
      jobs.push({ id: res.json.jobId, records: recs });
    }
    await waitFor(() => upstream.calls.length >= 5);
    expect(await first.kill('SIGKILL')).toBeNull(); // killed, not exited

    const second = await spawnService(env);
    procs.push(second);
    expect(second.output()).toMatch(/"resumedJobs":3/);
    for (const job of jobs) {
      const done = await waitForJob(second.url, job.id, 20_000);
      expect(done.status).toBe('success');
      expect(done.results.map((r: any) => r.recordId).sort()).toEqual([...job.records].sort());
    }
    // At-least-once: every record reached the upstream; only the few in flight at the kill twice.
    for (const job of jobs) for (const r of job.records) expect(upstream.callsFor(r).length).toBeGreaterThanOrEqual(1);
    const duplicates = upstream.calls.length - jobs.length * 8;
    expect(duplicates).toBeLessThanOrEqual(2 * 2); // at most the in-flight calls (concurrency 2), per crash window

    expect(await second.kill('SIGTERM')).toBe(0);
  });

  it('a 202 is durable: SIGKILL the moment it arrives, restart, and the job finishes (several rounds)', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 30 }));
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const env = { DATA_DIR: dataDir, API_TOKENS: TOKEN, TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, TASK_SYNC_CONCURRENCY: '2' };
    const accepted: Array<{ jobId: string; records: string[] }> = [];
    let service = await spawnService(env);
    procs.push(service);
    for (let round = 0; round < 4; round++) {
      const recs = records(`kill${round}`, 6);
      const answer = await postThenKill(service, { webhookUrl: `${upstream.url}/hooks/k`, records: recs });
      expect(answer.status).toBe(202);
      expect(await service.kill('SIGKILL')).toBeNull(); // it died of the signal
      accepted.push({ jobId: answer.jobId, records: recs });
      service = await spawnService(env); // same DATA_DIR
      procs.push(service);
    }
    for (const job of accepted) {
      expect((await api(service.url, `/api/task-sync/status/${job.jobId}`)).status, `job ${job.jobId} lost`).toBe(200);
      const done = await waitForJob(service.url, job.jobId, 20_000);
      expect(done.status).toBe('success');
      expect(done.results.map((r: any) => r.recordId).sort()).toEqual([...job.records].sort());
      for (const r of job.records) expect(upstream.callsFor(r).length, r).toBeGreaterThanOrEqual(1);
    }
    expect(await service.kill('SIGTERM')).toBe(0);
  });

  it('stops cleanly on SIGTERM: in-flight calls finish, the rest resumes on the next start', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 150 }));
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const env = { DATA_DIR: dataDir, API_TOKENS: TOKEN, TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, TASK_SYNC_CONCURRENCY: '1' };
    const first = await spawnService(env);
    procs.push(first);
    const recs = records('t', 6);
    const res = await api(first.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/t`, records: recs } });
    await waitFor(() => upstream.calls.length >= 1);
    expect(await first.kill('SIGTERM')).toBe(0);
    expect(first.output()).toMatch(/"msg":"stopped"/);
    const callsBefore = upstream.calls.length;
    expect(callsBefore).toBeLessThan(6);

    const second = await spawnService(env);
    procs.push(second);
    const done = await waitForJob(second.url, res.json.jobId, 20_000);
    expect(done.status).toBe('success');
    expect(done.results).toHaveLength(6);
    // A clean stop lets the running call finish and records it: nothing is sent twice.
    expect(upstream.calls).toHaveLength(6);
  });

  it('finishes jobs after an in-process teardown with no clean stop', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 50 }));
    const env = { TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`, TASK_SYNC_CONCURRENCY: '1' };
    const app = await startTestApp(env);
    dirs.push(app.dataDir);
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/x`, records: records('x', 5) } });
    await waitFor(() => upstream.calls.length >= 1);
    await app.crash();
    const again = await startTestApp(env, app.dataDir);
    const done = await waitForJob(again.url, res.json.jobId);
    expect(done.status).toBe('success');
    expect(done.results).toHaveLength(5);
    await again.stop();
  });
});
