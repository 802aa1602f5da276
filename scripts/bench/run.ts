/**
 * npm run bench — lark-bridge against a bare Koa handler, measured in the same run on loopback.
 *
 *   1. GET /healthz and the POST /api/task-sync 202 path vs bare Koa (req/s, p99, ratio),
 *      on an empty data dir and again with 100,000 finished jobs retained; RSS of the service.
 *   2. A 1,000-record batch against a 200 ms upstream at TASK_SYNC_CONCURRENCY=32.
 *
 * Every load is bounded (BENCH_SECONDS per run) and targets 127.0.0.1 only.
 * Env: BENCH_SECONDS (default 8), BENCH_CONNECTIONS (50), BENCH_RETAINED (100000), BENCH_LOG_LEVEL (warn).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startProc, stopProc, type Proc } from './procs.js';
import { seedFinishedJobs } from './seed-jobs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const RETAINED = Number(process.env.BENCH_RETAINED ?? 100_000);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'warn';
const TOKEN = 'bench-token';

const serviceEnv = (dataDir: string, upstreamUrl: string) => ({
  DATA_DIR: dataDir,
  FLOWS_DIR: `${dataDir}-no-flows`, // no flows: this bench is about task-sync
  API_TOKENS: TOKEN,
  LOG_LEVEL,
  TASK_SYNC_ALLOWED_URLS: `${upstreamUrl}/hooks/`,
});

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

interface Load {
  rps: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, opts: { method?: 'GET' | 'POST'; body?: string; headers?: Record<string, string> } = {}): Promise<Load> {
  // Warm-up (not measured): JIT and connection set-up count for neither side.
  await autocannon({ url, connections: CONNECTIONS, duration: 2, method: opts.method ?? 'GET', body: opts.body, headers: opts.headers });
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    method: opts.method ?? 'GET',
    body: opts.body,
    headers: opts.headers,
  });
  return { rps: Math.round(result.requests.average), p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

function row(name: string, ours: Load, bare: Load): string {
  const ratio = ours.rps / bare.rps;
  return `${name.padEnd(34)} ${String(ours.rps).padStart(7)} req/s  p99 ${String(ours.p99).padStart(4)} ms | bare ${String(bare.rps).padStart(7)} req/s  p99 ${String(bare.p99).padStart(4)} ms | ratio ${(ratio * 100).toFixed(0)}%${ours.non2xx || ours.errors ? `  (non-2xx ${ours.non2xx}, errors ${ours.errors})` : ''}`;
}

async function compare(label: string, dataDir: string, upstreamUrl: string, bare: Proc): Promise<{ post: Load; rss: number }> {
  const svc = await startProc('src/main.ts', serviceEnv(dataDir, upstreamUrl));
  const body = JSON.stringify({ webhookUrl: `${upstreamUrl}/hooks/bench`, records: ['rec-1'] });
  const post = { method: 'POST' as const, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } };

  const healthBare = await load(`${bare.url}/healthz`);
  const health = await load(`${svc.url}/healthz`);
  const postBare = await load(`${bare.url}/api/task-sync`, post);
  const postOurs = await load(`${svc.url}/api/task-sync`, post);
  const rss = rssMb(svc.child.pid!);
  console.log(`\n[${label}]`);
  console.log(row('GET /healthz', health, healthBare));
  console.log(row('POST /api/task-sync (202 path)', postOurs, postBare));
  console.log(`RSS of lark-bridge after the runs: ${rss} MB`);
  await stopProc(svc);
  return { post: postOurs, rss };
}

async function batchRun(upstreamUrl: string): Promise<number> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
  const svc = await startProc('src/main.ts', {
    ...serviceEnv(dataDir, upstreamUrl),
    TASK_SYNC_CONCURRENCY: '32',
    TASK_SYNC_MAX_RECORDS: '1000', // the API's default cap is 500 records
  });
  const records = Array.from({ length: 1000 }, (_, i) => `rec-${i}`);
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` };
  const started = performance.now();
  const res = await fetch(`${svc.url}/api/task-sync`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ webhookUrl: `${upstreamUrl}/hooks/batch`, records }),
  });
  if (res.status !== 202) throw new Error(`batch refused: ${res.status} ${await res.text()}`);
  const { jobId } = (await res.json()) as { jobId: string };
  let status = 'queued';
  while (!['success', 'error', 'partial', 'accepted'].includes(status)) {
    if (performance.now() - started > 60_000) throw new Error('batch did not finish within 60 s');
    await new Promise((r) => setTimeout(r, 20));
    status = ((await (await fetch(`${svc.url}/api/task-sync/status/${jobId}`, { headers })).json()) as { status: string }).status;
  }
  const seconds = (performance.now() - started) / 1000;
  await stopProc(svc);
  await rm(dataDir, { recursive: true, force: true });
  console.log(`\n[1,000-record batch, 200 ms upstream, concurrency 32] ${seconds.toFixed(2)} s (ideal 6.25 s, target ≤ 7.19 s), status ${status}`);
  return seconds;
}

async function main(): Promise<void> {
  console.log(`bench: ${CONNECTIONS} connections, ${SECONDS} s per run, LOG_LEVEL=${LOG_LEVEL}, node ${process.version}`);
  const bare = await startProc('scripts/bench/bare-koa.ts', {});
  const fastUpstream = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '0' });
  const slowUpstream = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '200' });
  const dirs: string[] = [];
  try {
    const empty = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
    dirs.push(empty);
    const a = await compare('empty data dir', empty, fastUpstream.url, bare);

    const seeded = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
    dirs.push(seeded);
    const t0 = performance.now();
    await seedFinishedJobs(seeded, RETAINED);
    console.log(`\nseeded ${RETAINED} finished jobs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const b = await compare(`${RETAINED} finished jobs retained`, seeded, fastUpstream.url, bare);
    console.log(`\n202 path with history vs empty: ${(a.post.rps / b.post.rps).toFixed(2)}x slower (target ≤ 2x); RSS ${b.rss} MB (target < 300 MB)`);

    await batchRun(slowUpstream.url);
  } finally {
    for (const p of [bare, fastUpstream, slowUpstream]) await stopProc(p);
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
