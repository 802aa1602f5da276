/**
 * npx tsx scripts/bench/store-pg.ts — the PostgreSQL store: commit latency, and throughput of
 * accepted jobs and of claims across two replicas. Not a timed test: it prints figures.
 *
 * Against BENCH_DATABASE_URL (an empty database you can spare: the store's tables are created
 * and filled) or, unset, a throwaway local cluster with fsync on (test/helpers/postgres.ts), so
 * a commit costs a WAL flush as in production.
 *   commit   = one awaited put at a time, from one client: the latency of one commit;
 *   claim    = one awaited key claim at a time (a Lark event id, an idempotency key);
 *   accept   = put(job) + claim(idempotency key), awaited, from BENCH_CLIENTS clients at once
 *              (what a 202 waits for), on one replica, then on two replicas sharing the clients;
 *   takeover = two replicas claimStale(BENCH_BATCH) in a loop until BENCH_STALE stale jobs are
 *              taken (what picks up a dead replica's work); checked: none taken twice.
 * The embedded journal store runs the same accept on the same machine, for comparison.
 *
 * Env: BENCH_DATABASE_URL, BENCH_JOBS (5000), BENCH_CLIENTS (50), BENCH_POOL (10), BENCH_STALE (10000), BENCH_BATCH (50).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { systemClock } from '../../src/clock.js';
import type { Job } from '../../src/jobs/job.js';
import { openJournalStore } from '../../src/store/open-store.js';
import { openPgStore, type PgStore } from '../../src/store/pg/pg-store.js';
import type { Store } from '../../src/store/store.js';
import { startPostgres, type PostgresCluster } from '../../test/helpers/postgres.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 5000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);
const POOL = Number(process.env.BENCH_POOL ?? 10);
const STALE = Number(process.env.BENCH_STALE ?? 10_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 50);
const DAY = 86_400_000;
const quiet = { warn: (m: string) => console.warn(m), info: () => undefined };

function job(id: string): Job {
  const now = new Date().toISOString();
  return {
    id,
    mode: 'batch',
    webhookUrl: 'https://open.feishu.cn/anycross/trigger/callback/bench',
    records: ['rec-1', 'rec-2', 'rec-3'],
    timeoutSec: 15,
    status: 'queued',
    results: [null, null, null],
    createdAt: now,
    updatedAt: now,
    completedAt: null,
    client: 'c0ffee',
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function summary(label: string, latencies: number[], elapsedMs: number, unit = 'jobs'): void {
  const sorted = [...latencies].sort((a, b) => a - b);
  const rate = (latencies.length / elapsedMs) * 1000;
  console.log(
    `${label.padEnd(44)} ${rate.toFixed(0).padStart(7)} ${unit}/s   p50 ${percentile(sorted, 50).toFixed(2).padStart(6)} ms   p99 ${percentile(sorted, 99).toFixed(2).padStart(6)} ms   (${latencies.length.toLocaleString('en')})`,
  );
}

/** `count` operations, one at a time. */
async function sequential(count: number, op: (i: number) => Promise<unknown>): Promise<{ latencies: number[]; elapsed: number }> {
  const latencies: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await op(i);
    latencies.push(performance.now() - start);
  }
  return { latencies, elapsed: performance.now() - t0 };
}

/** `count` operations from `clients` clients, each waiting for its previous one; client i uses stores[i % stores.length]. */
async function concurrent(count: number, clients: number, op: (i: number, client: number) => Promise<unknown>): Promise<{ latencies: number[]; elapsed: number }> {
  const latencies: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = next++; i < count; i = next++) {
        const start = performance.now();
        await op(i, client);
        latencies.push(performance.now() - start);
      }
    }),
  );
  return { latencies, elapsed: performance.now() - t0 };
}

const accept = (stores: Store[]) => (i: number, client: number) => {
  const store = stores[client % stores.length]!;
  const j = job(randomUUID());
  return Promise.all([store.collection<Job>('jobs').put(j), store.keys<{ jobId: string }>('idempotency').claim(`c0ffee\u0000key-${i}-${j.id}`, { jobId: j.id }, Date.now() + DAY)]);
};

async function benchPg(url: string): Promise<void> {
  const open = () => openPgStore({ url, clock: systemClock, log: quiet, poolMax: POOL });
  const a: PgStore = await open();
  const b: PgStore = await open();
  try {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const { rows } = await admin.query<{ v: string; sync: string; fsync: string }>("SELECT version() AS v, current_setting('synchronous_commit') AS sync, current_setting('fsync') AS fsync");
    console.log(`\n${rows[0]!.v.split(' on ')[0]} — fsync ${rows[0]!.fsync}, synchronous_commit ${rows[0]!.sync}, pool ${POOL} per replica, ${CLIENTS} clients\n`);

    const jobs = a.collection<Job>('jobs');
    await sequential(200, (i) => jobs.put(job(`warm-${i}`)));
    let r = await sequential(JOBS / 5, (i) => jobs.put(job(`seq-${i}`)));
    summary('commit: one put at a time', r.latencies, r.elapsed, 'puts');
    const keys = a.keys<number>('lark-events');
    r = await sequential(JOBS / 5, (i) => keys.claim(`ev-${i}`, i, Date.now() + DAY));
    summary('claim: one key claim at a time', r.latencies, r.elapsed, 'claims');

    r = await concurrent(JOBS, CLIENTS, accept([a]));
    summary('accept (put + claim): one replica', r.latencies, r.elapsed);
    r = await concurrent(JOBS, CLIENTS, accept([a, b]));
    summary('accept (put + claim): two replicas', r.latencies, r.elapsed);

    // A dead replica's jobs: STALE live jobs leased to nobody (released), taken by two replicas.
    await admin.query("DELETE FROM live_records WHERE collection = 'takeover'");
    await admin.query(
      `INSERT INTO live_records (collection, id, doc, lease_owner, lease_until)
       SELECT 'takeover', 'stale-' || g, json_build_object('id', 'stale-' || g, 'status', 'running'), 'dead-replica', 0 FROM generate_series(1, $1) g`,
      [STALE],
    );
    await admin.end();
    const taken = new Map<string, number>();
    const claimLatencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      [a, b].flatMap((store) =>
        Array.from({ length: 4 }, async () => {
          for (;;) {
            const start = performance.now();
            const got = await store.collection<{ id: string }>('takeover').claimStale(BATCH, 60_000);
            claimLatencies.push(performance.now() - start);
            if (!got.length) return;
            for (const rec of got) taken.set(rec.id, (taken.get(rec.id) ?? 0) + 1);
          }
        }),
      ),
    );
    const elapsed = performance.now() - t0;
    const twice = [...taken.values()].filter((n) => n > 1).length;
    const sorted = claimLatencies.sort((x, y) => x - y);
    console.log(
      `${'takeover: claimStale, 2 replicas x 4 loops'.padEnd(44)} ${((taken.size / elapsed) * 1000).toFixed(0).padStart(7)} jobs/s   p50 ${percentile(sorted, 50).toFixed(2).padStart(6)} ms   p99 ${percentile(sorted, 99).toFixed(2).padStart(6)} ms per batch of ${BATCH}   (${taken.size.toLocaleString('en')} taken, ${twice} twice)`,
    );
    if (taken.size !== STALE || twice) throw new Error(`claimStale handed out ${taken.size} of ${STALE}, ${twice} twice`);
  } finally {
    await a.close();
    await b.close();
  }
}

async function benchJournal(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-journal-'));
  try {
    const store = await openJournalStore({ dir, clock: systemClock, log: quiet });
    const r = await concurrent(JOBS, CLIENTS, accept([store]));
    summary('for comparison — embedded journal accept', r.latencies, r.elapsed);
    await store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  let cluster: PostgresCluster | undefined;
  let url = process.env.BENCH_DATABASE_URL;
  if (!url) {
    cluster = await startPostgres({ durable: true });
    url = await cluster.createDatabase('bench');
  }
  try {
    await benchPg(url);
    await benchJournal();
  } finally {
    await cluster?.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
