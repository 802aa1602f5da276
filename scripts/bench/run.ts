/**
 * npm run bench — lark-bridge against a bare Koa handler, side by side in one run, on loopback.
 *
 *   1. GET /healthz.
 *   2. The POST /api/task-sync 202 path (each 202 a durable job) while the accepted jobs run
 *      against a 2 ms upstream: throughput ratio, p50/p99, CPU per 202; then the drain (how fast
 *      the backlog the burst left finishes, every job checked final), the store's journal bytes
 *      and group commits (one write + one fdatasync each) per 1,000 jobs, accept to archive, and RSS.
 *      Once on an empty data dir, once with BENCH_RETAINED (100,000) finished jobs retained.
 *   3. Lark intake: encrypted, signed approval_task events, each running the whole pipeline.
 *   4. A 1,000-record batch against a 200 ms upstream at TASK_SYNC_CONCURRENCY=32.
 *
 * Beside bare Koa, the 202 path is also set against the durable floor (durable-floor.ts): bare
 * Koa plus one durable append per request, group-committed as the journal does. It is the most a
 * durable 202 can reach on this machine; what lies between the floor and us is our own work.
 *
 * The service runs as production runs it (dist/main.js, built when stale), LOG_LEVEL=warn (the
 * access log at info costs more than the rest of a 202: BENCH_LOG_LEVEL=info to see it), with
 * METRICS_TOKEN set (its counters are read here). The task-sync queue bounds are raised so that
 * the whole burst is accepted (with the defaults, 10,000 unfinished records per token, a burst
 * faster than the drain is answered 429 once the backlog is full: that is the bound working).
 *
 * Every load is bounded (2 s warm-up + BENCH_SECONDS per run) and targets 127.0.0.1 only.
 * Env: BENCH_SECONDS (8), BENCH_CONNECTIONS (50), BENCH_RETAINED (100000), BENCH_LOG_LEVEL (warn).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventRequests, LARK_CALLBACK, startLarkWorld } from './intake-world.js';
import { CONNECTIONS, load, row, rssMb, SECONDS, type Load } from './load.js';
import { startProc, startService, stopProc, type Proc } from './procs.js';
import { seedFinishedJobs } from './seed-jobs.js';

const RETAINED = Number(process.env.BENCH_RETAINED ?? 100_000);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'warn';
const TOKEN = 'bench-token';
const METRICS_TOKEN = 'bench-metrics-token-0000';
const DRAIN_LIMIT_MS = 180_000;

const serviceEnv = (dataDir: string, upstreamUrl: string) => ({
  DATA_DIR: dataDir,
  FLOWS_DIR: `${dataDir}-no-flows`, // no flows: this part is about task-sync
  API_TOKENS: TOKEN,
  LOG_LEVEL,
  METRICS_TOKEN,
  TASK_SYNC_ALLOWED_URLS: `${upstreamUrl}/hooks/`,
  TASK_SYNC_MAX_QUEUED_RECORDS: '1000000',
  TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '1000000',
  TASK_SYNC_MAX_QUEUED_BYTES: String(2 ** 30),
  TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT: String(2 ** 30),
});

const auth = { authorization: `Bearer ${TOKEN}` };

/** The store's journal counters, from /metrics. */
async function storeCounters(svc: Proc): Promise<{ commits: number; bytes: number }> {
  const text = await (await fetch(`${svc.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { commits: value('lark_bridge_store_commit_duration_seconds_count'), bytes: value('lark_bridge_store_commit_bytes_total') };
}

interface Jobs {
  live: number;
  finished: number;
  unfinished: Record<string, number>;
}

async function jobCounts(svc: Proc): Promise<Jobs> {
  const body = (await (await fetch(`${svc.url}/api/status`, { headers: auth })).json()) as { jobs: { live: Record<string, number>; finishedSinceStart: Record<string, number> } };
  const live = Object.values(body.jobs.live).reduce((a, b) => a + b, 0);
  const finished = Object.values(body.jobs.finishedSinceStart).reduce((a, b) => a + b, 0);
  return { live, finished, unfinished: body.jobs.live };
}

interface TaskSyncResult {
  post: Load;
  rss: number;
  rssAtStart: number;
}

async function taskSync(label: string, dataDir: string, upstreamUrl: string, bareHealth: Load, barePost: Load, floor: Load): Promise<TaskSyncResult> {
  const svc = await startService(serviceEnv(dataDir, upstreamUrl));
  const rssAtStart = rssMb(svc.child.pid!);
  try {
    const body = JSON.stringify({ webhookUrl: `${upstreamUrl}/hooks/bench`, records: ['rec-1'] });
    const post = { method: 'POST' as const, body, headers: { 'content-type': 'application/json', ...auth }, pid: svc.child.pid };
    const health = await load(`${svc.url}/healthz`, { pid: svc.child.pid });
    const before = await storeCounters(svc);
    const ours = await load(`${svc.url}/api/task-sync`, post);
    const burstEnd = performance.now();
    const backlog = await jobCounts(svc);
    let now = backlog;
    while (now.live > 0) {
      if (performance.now() - burstEnd > DRAIN_LIMIT_MS) throw new Error(`${now.live} jobs still unfinished ${DRAIN_LIMIT_MS / 1000} s after the burst`);
      await new Promise((r) => setTimeout(r, 100));
      now = await jobCounts(svc);
    }
    const drainS = (performance.now() - burstEnd) / 1000;
    const after = await storeCounters(svc);
    const rss = rssMb(svc.child.pid!);
    // Every job of the burst (warm-up included) is final and archived: none left live, each counted once.
    const accepted = now.finished;
    const perK = (n: number) => Math.round((n * 1000) / accepted);
    console.log(`\n[task-sync, ${label}: jobs running against a 2 ms upstream meanwhile]`);
    console.log(row('GET /healthz', health, bareHealth));
    console.log(row('POST /api/task-sync (202, job durable)', ours, barePost));
    console.log(row('  the durable floor (bare Koa + durable append)', floor, barePost));
    console.log(`  lark-bridge's 202 at ${(ours.rps / floor.rps).toFixed(2)} of the durable floor`);
    console.log(
      `drain: ${accepted} jobs accepted (warm-up included), ${backlog.live} unfinished when the burst ended, all final ${drainS.toFixed(1)} s later ` +
        `(${backlog.live ? Math.round(backlog.live / drainS) : '–'} jobs/s drained; ${Math.round(accepted / (SECONDS + 2 + drainS))} jobs/s accept to archive overall)`,
    );
    console.log(
      `store, per 1,000 jobs (accept, results, archive; compaction not included): ${((perK(after.bytes - before.bytes) / 1024) | 0).toLocaleString('en')} KiB appended, ` +
        `${perK(after.commits - before.commits)} group commits (one write + one fdatasync each)   [measured part + drain; counters from /metrics]`,
    );
    console.log(`RSS: ${rssAtStart} MB at start, ${rss} MB after the burst and its drain`);
    return { post: ours, rss, rssAtStart };
  } finally {
    await stopProc(svc);
  }
}

async function intake(bare: Proc): Promise<{ ours: Load; bare: Load }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
  const world = await startLarkWorld();
  const svc = await startService({ ...world.env, DATA_DIR: dataDir, LOG_LEVEL, METRICS_TOKEN });
  try {
    const b = await load(`${bare.url}${LARK_CALLBACK}`, { requests: eventRequests });
    const o = await load(`${svc.url}${LARK_CALLBACK}`, { requests: eventRequests, pid: svc.child.pid });
    console.log('\n[Lark intake: encrypted, signed approval_task events, each a new instance: record, instance get, business check, approve, card]');
    console.log(row('POST /api/v1/lark/callback', o, b));
    console.log(`RSS after the run: ${rssMb(svc.child.pid!)} MB`);
    return { ours: o, bare: b };
  } finally {
    await stopProc(svc);
    await world.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function batchRun(upstreamUrl: string): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
  const svc = await startService({
    ...serviceEnv(dataDir, upstreamUrl),
    TASK_SYNC_CONCURRENCY: '32',
    TASK_SYNC_MAX_RECORDS: '1000', // the API's default cap is 500 records
  });
  try {
    const headers = { 'content-type': 'application/json', ...auth };
    const records = Array.from({ length: 1000 }, (_, i) => `rec-${i}`);
    const started = performance.now();
    const res = await fetch(`${svc.url}/api/task-sync`, { method: 'POST', headers, body: JSON.stringify({ webhookUrl: `${upstreamUrl}/hooks/batch`, records }) });
    if (res.status !== 202) throw new Error(`batch refused: ${res.status} ${await res.text()}`);
    const { jobId } = (await res.json()) as { jobId: string };
    let status = 'queued';
    while (!['success', 'error', 'partial', 'accepted'].includes(status)) {
      if (performance.now() - started > 60_000) throw new Error('batch did not finish within 60 s');
      await new Promise((r) => setTimeout(r, 20));
      status = ((await (await fetch(`${svc.url}/api/task-sync/status/${jobId}`, { headers })).json()) as { status: string }).status;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(`\n[1,000-record batch, 200 ms upstream, TASK_SYNC_CONCURRENCY=32] ${seconds.toFixed(2)} s (ideal 6.25 s), status ${status}`);
    return seconds;
  } finally {
    await stopProc(svc);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`bench: ${CONNECTIONS} connections, 2 s warm-up + ${SECONDS} s per run, LOG_LEVEL=${LOG_LEVEL}, node ${process.version}, service = dist/main.js`);
  const bare = await startProc('scripts/bench/bare-koa.ts', {});
  const upstream = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '2' });
  const slowUpstream = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '200' });
  const dirs: string[] = [];
  try {
    const bareHealth = await load(`${bare.url}/healthz`);
    const barePostOptions = { method: 'POST' as const, body: JSON.stringify({ webhookUrl: 'x', records: ['rec-1'] }), headers: { 'content-type': 'application/json' } };
    const barePost = await load(`${bare.url}/api/task-sync`, barePostOptions);
    const floorProc = await startProc('scripts/bench/durable-floor.ts', {});
    const floor = await load(`${floorProc.url}/api/task-sync`, { ...barePostOptions, pid: floorProc.child.pid }).finally(() => stopProc(floorProc));

    const empty = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
    dirs.push(empty);
    const a = await taskSync('empty data dir', empty, upstream.url, bareHealth, barePost, floor);

    const seeded = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
    dirs.push(seeded);
    const t0 = performance.now();
    await seedFinishedJobs(seeded, RETAINED);
    console.log(`\nseeded ${RETAINED.toLocaleString('en')} finished jobs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const b = await taskSync(`${RETAINED.toLocaleString('en')} finished jobs retained`, seeded, upstream.url, bareHealth, barePost, floor);

    const i = await intake(bare);
    const batch = await batchRun(slowUpstream.url);

    const ratio = (l: Load, base: Load) => (l.rps / base.rps).toFixed(2);
    console.log('\n[summary, against the targets of the journal issue]');
    console.log(`task-sync 202 ratio ${ratio(a.post, barePost)} (target ≥ 0.5), p99 ${a.post.p99} ms (target < 20 ms); the durable floor ${ratio(floor, barePost)} of bare Koa, p99 ${floor.p99} ms`);
    console.log(`Lark intake ratio ${ratio(i.ours, i.bare)} (target ≥ 0.5), p99 ${i.ours.p99} ms (target < 20 ms)`);
    console.log(`${RETAINED.toLocaleString('en')} retained: submit p99 ${b.post.p99} ms vs ${a.post.p99} ms empty = ${(b.post.p99 / a.post.p99).toFixed(2)}× (target ≤ 1.2×), RSS ${b.rssAtStart} MB at start, ${b.rss} MB after the burst (target < 250 MB)`);
    console.log(`1,000-record batch ${batch.toFixed(2)} s`);
  } finally {
    for (const p of [bare, upstream, slowUpstream]) await stopProc(p);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
