/**
 * The service on PostgreSQL, killed with SIGKILL mid-burst: every job that got its 202 is in the
 * database and finishes after the restart; requests that were refused or cut made nothing.
 * (One replica; several replicas sharing the database: test/replicas-*.test.ts.)
 */
import { readdir } from 'node:fs/promises';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { spawnService, type ServiceProcess } from './helpers/service-process.js';
import { api, removeDir, tempDir, TOKEN, waitFor, waitForJob } from './helpers/test-app.js';

describe.skipIf(postgresSkipReason() !== undefined)('the service on PostgreSQL, killed with SIGKILL', () => {
  let cluster: PostgresCluster;
  let upstream: FakeUpstream | undefined;
  const procs: ServiceProcess[] = [];
  const dirs: string[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill('SIGKILL');
    await upstream?.close();
    await Promise.all(dirs.splice(0).map(removeDir));
  });

  it('finishes after the restart every job that got its 202, and nothing else', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 20 }));
    const dir = await tempDir('lark-bridge-pg-proc-');
    dirs.push(dir);
    const env = {
      DATABASE_URL: await cluster.createDatabase('process'),
      // The restarted process is a new replica: it takes the killed one's jobs once their leases run out.
      DATABASE_LEASE_MS: '2000',
      DATA_DIR: dir, // unused with DATABASE_URL: nothing may be written there
      FLOWS_DIR: dir,
      API_TOKENS: TOKEN,
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_CONCURRENCY: '2',
      TASK_SYNC_MAX_RECORDS: '20',
    };
    const first = await spawnService(env);
    procs.push(first);
    await waitFor(() => /Store: PostgreSQL at 127\.0\.0\.1:\d+\/process_\w+ \(pool 10, TLS as the URL says\)/.test(first.output()));

    const sent = Array.from({ length: 60 }, (_, i) => Array.from({ length: 5 }, (_, r) => `burst${i}-${r}`));
    const answers = sent.map((records) =>
      api(first.url, '/api/task-sync', { body: { webhookUrl: `${upstream!.url}/hooks/b`, records } }).then(
        (res) => ({ records, status: res.status, jobId: res.json?.jobId as string | undefined }),
        () => ({ records, status: 0, jobId: undefined }), // the connection died with the process
      ),
    );
    await waitFor(() => upstream!.calls.length >= 3);
    first.child.kill('SIGKILL');
    const results = await Promise.all(answers);
    expect(await first.kill('SIGKILL')).toBeNull();
    const accepted = results.filter((r) => r.status === 202);
    expect(accepted.length).toBeGreaterThan(0);
    expect(results.every((r) => [0, 202].includes(r.status))).toBe(true);

    const second = await spawnService(env);
    procs.push(second);
    for (const job of accepted) {
      const done = await waitForJob(second.url, job.jobId!, 30_000);
      expect(done.status, job.jobId).toBe('success');
      expect(done.results.map((r: any) => r.recordId).sort()).toEqual([...job.records].sort());
    }
    // Every record ever sent upstream belongs to a job the database holds: nothing ran that was not committed.
    const db = new pg.Client({ connectionString: env.DATABASE_URL });
    await db.connect();
    const { rows } = await db.query<{ doc: { records: string[] } }>(
      "SELECT doc FROM live_records WHERE collection = 'jobs' UNION ALL SELECT doc FROM archived_records WHERE collection = 'jobs'",
    );
    await db.end();
    const stored = new Set(rows.flatMap((r) => r.doc.records));
    expect(upstream.calls.length).toBeGreaterThan(0);
    for (const call of upstream.calls) expect(stored.has(call.body?.recordId), JSON.stringify(call.body)).toBe(true);
    expect(await readdir(dir)).toEqual([]); // nothing was written to DATA_DIR
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
