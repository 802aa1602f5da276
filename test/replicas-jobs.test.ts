/**
 * Two replicas (src/main.ts processes) on one PostgreSQL database share the task-sync jobs: a
 * burst split across both, one replica killed with SIGKILL mid-way, every job finishes once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, MIGRATIONS_TABLE } from '../src/store/pg/migrate.js';
import { startFakeUpstream, type FakeUpstream, type UpstreamCall } from './helpers/fake-upstream.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { allDocs, killReplica, query, startReplicas, type Replica } from './helpers/replicas.js';
import { api, removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

const JOBS = 1000;
const RECORDS_PER_JOB = 2;
const CONCURRENCY = 8;

describe.skipIf(postgresSkipReason() !== undefined)('two replicas on one PostgreSQL: task-sync jobs', () => {
  let cluster: PostgresCluster;
  let upstream: FakeUpstream | undefined;
  const procs: Replica[] = [];
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

  it('migrates once when both start together; a 1,000-job burst split across both, one SIGKILLed mid-way: every job finishes, each record sent once but for calls in flight at the kill', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, delayMs: 15 }));
    const dir = await tempDir('lark-bridge-replicas-');
    dirs.push(dir);
    const url = await cluster.createDatabase('replica_jobs');
    const env = {
      DATABASE_URL: url,
      // A dead replica's jobs are taken over within seconds; long enough that a live replica stalled
      // by a loaded CI machine keeps its leases (two live replicas never work one job).
      DATABASE_LEASE_MS: '5000',
      DATA_DIR: dir,
      FLOWS_DIR: dir,
      API_TOKENS: TOKEN,
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_CONCURRENCY: String(CONCURRENCY),
      LOG_LEVEL: 'info',
    };
    const [a, b] = await startReplicas(2, env);
    procs.push(a!, b!);


    // Both started on an empty database at once: one applied the migrations, the other found them done.
    const shipped = await loadMigrations();
    const applied = [a!, b!].map((r) => (r.output().match(/applied migration/g) ?? []).length);
    expect(applied.sort()).toEqual([0, shipped.length]);
    expect(await query(url, `SELECT version FROM ${MIGRATIONS_TABLE} ORDER BY version`)).toEqual(shipped.map((m) => ({ version: m.version })));

    // The burst: job i goes to replica i % 2, 24 requests at a time. Mid-way replica a is
    // killed, and a third replica c starts (a deploy replacing it) and takes a's place. A request
    // whose replica is gone is sent to b with the same Idempotency-Key (what nginx's next
    // upstream, or a client retry, does): a job the dead replica made already is answered, not
    // made twice.
    let killedAt = 0;
    const targets: Replica[] = [a!, b!];
    const jobIdOf = new Map<number, string>();
    const send = async (i: number): Promise<void> => {
      const body = { webhookUrl: `${upstream!.url}/hooks/burst`, records: Array.from({ length: RECORDS_PER_JOB }, (_, r) => `rec-${i}-${r}`) };
      const headers = { 'idempotency-key': `burst-${i}` };
      let res = await api(targets[i % 2]!.url, '/api/task-sync', { body, headers }).catch(() => undefined);
      if (!res || res.status !== 202) res = await api(b!.url, '/api/task-sync', { body, headers });
      expect(res.status, JSON.stringify(res.json)).toBe(202);
      jobIdOf.set(i, res.json.jobId);
    };
    let next = 0;
    let replaced: Promise<void> | undefined;
    const worker = async () => {
      while (next < JOBS) {
        const i = next++;
        await send(i);
        // Mid-way: replica a dies with calls in flight and results not yet written.
        if (i === JOBS / 2) {
          await waitFor(() => upstream!.calls.length > 200);
          killedAt = await killReplica(a!);
          targets[0] = b!;
          replaced = startReplicas(1, env).then(([c]) => {
            procs.push(c!);
            targets[0] = c!;
          });
        }
      }
    };
    await Promise.all(Array.from({ length: 24 }, worker));
    await replaced;
    const c = targets[0]!;
    expect(c).not.toBe(b);
    expect(killedAt).toBeGreaterThan(0);
    expect(new Set(jobIdOf.values()).size).toBe(JOBS); // one job per key, whichever replica answered

    // b and c finish everything: their own jobs, and those a left (claimed once a's leases ran out).
    await waitFor(async () => (await query<{ n: number }>(url, "SELECT count(*)::int AS n FROM live_records WHERE collection = 'jobs'"))[0]!.n === 0, 60_000, 200);
    const jobs = await allDocs<{ id: string; status: string; records: string[]; results: Array<{ recordId: string; status: string }> }>(url, 'jobs');
    expect(jobs).toHaveLength(JOBS); // the database holds exactly the jobs the clients were told of
    for (const { doc } of jobs) {
      expect(doc.status, doc.id).toBe('success');
      expect(doc.results.map((r) => r.recordId)).toEqual(doc.records);
    }
    const answer = await api(b!.url, `/api/task-sync/status/${jobIdOf.get(0)}`);
    expect(answer.json).toMatchObject({ status: 'success', done: RECORDS_PER_JOB });

    const answerC = await api(c.url, `/api/task-sync/status/${jobIdOf.get(1)}`); // the same answer on every replica
    expect(answerC.json).toEqual((await api(b!.url, `/api/task-sync/status/${jobIdOf.get(1)}`)).json);

    // "Exactly once", precisely: every record of every job reached the upstream, under the
    // Idempotency-Key `jobId:recordId`. A key reached it more than once only when its first call
    // arrived before a's death was seen (a's call in flight, or answered but not yet recorded) and
    // the repeat came after (b, which took the job over); never twice before the kill (the two
    // live replicas never worked one job together), never twice after (b and c, both
    // alive, took each job once; c, starting while b worked, took none of b's jobs).
    const byKey = new Map<string, UpstreamCall[]>();
    for (const call of upstream.calls) {
      const key = String(call.headers['idempotency-key']);
      byKey.set(key, [...(byKey.get(key) ?? []), call]);
    }
    const expected = jobs.flatMap(({ doc }) => doc.records.map((r) => `${doc.id}:${r}`));
    expect([...byKey.keys()].sort()).toEqual(expected.sort());
    const repeated = [...byKey.entries()].filter(([, calls]) => calls.length > 1);
    for (const [key, calls] of repeated) {
      const before = calls.filter((c) => c.at < killedAt).length;
      expect({ key, before, after: calls.length - before }).toEqual({ key, before: 1, after: 1 });
    }
    // At most the calls a had in flight plus the results it had not written yet: a few per slot.
    expect(repeated.length).toBeLessThanOrEqual(2 * CONCURRENCY);
    const tookOver = (r: Replica) => Number(/"jobs":(\d+),"msg":"task-sync: resumed unfinished jobs"/.exec(r.output())?.[1] ?? 0);
    console.log(`replica burst: ${JOBS} jobs, ${upstream.calls.length} upstream calls, ${repeated.length} keys repeated after the kill; jobs taken over by b: ${tookOver(b!)}, by c: ${tookOver(c)}`);
    expect(a!.output()).toMatch(/task-sync job finished/); // the burst was really split
    expect(tookOver(b!) + tookOver(c)).toBeGreaterThan(0);
    expect(await b!.kill('SIGTERM')).toBe(0);
    expect(await c.kill('SIGTERM')).toBe(0);
  }, 120_000);
});
