import { afterEach, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, waitFor, waitForJob } from './helpers/test-app.js';

let upstream: FakeUpstream | undefined;
const procs: ServiceProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await upstream?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

describe('kill -9 during a burst at the queue bound', () => {
  it('every job that got its 202 finishes after the restart; refused ones never existed', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 20 }));
    const dataDir = await tempDir();
    dirs.push(dataDir);
    const tokens = ['tok-a', 'tok-b', 'tok-c'];
    const env = {
      DATA_DIR: dataDir,
      API_TOKENS: tokens.join(','),
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_CONCURRENCY: '2',
      TASK_SYNC_MAX_RECORDS: '20',
      TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '40',
      TASK_SYNC_MAX_QUEUED_RECORDS: '100',
    };
    const first = await spawnService(env);
    procs.push(first);

    // 60 batches of 5 from three tokens at once: 300 records against a bound of 100.
    const sent = Array.from({ length: 60 }, (_, i) => ({ token: tokens[i % 3]!, records: Array.from({ length: 5 }, (_, r) => `burst${i}-${r}`) }));
    const answers = sent.map((s) =>
      api(first.url, '/api/task-sync', { token: s.token, body: { webhookUrl: `${upstream!.url}/hooks/b`, records: s.records } }).then(
        (res) => ({ ...s, status: res.status, jobId: res.json?.jobId as string | undefined }),
        () => ({ ...s, status: 0, jobId: undefined }), // the connection died with the process
      ),
    );
    // Kill as soon as some were accepted: the rest of the burst is in flight.
    await waitFor(() => upstream!.calls.length >= 3);
    first.child.kill('SIGKILL');
    const results = await Promise.all(answers);
    expect(await first.kill('SIGKILL')).toBeNull();

    const accepted = results.filter((r) => r.status === 202);
    expect(accepted.length).toBeGreaterThan(0);
    expect(results.every((r) => [0, 202, 429, 503].includes(r.status))).toBe(true);

    const second = await spawnService(env);
    procs.push(second);
    for (const job of accepted) {
      const done = await waitForJob(second.url, job.jobId!, 30_000, job.token);
      expect(done.status, job.jobId).toBe('success');
      expect(done.results.map((r: any) => r.recordId).sort()).toEqual([...job.records].sort());
    }
    // Refused (429/503) requests made nothing: none of their records was ever sent.
    for (const r of results.filter((x) => x.status === 429 || x.status === 503)) {
      for (const id of r.records) expect(upstream.callsFor(id), id).toHaveLength(0);
    }
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
