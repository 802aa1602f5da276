/**
 * npm run bench:queue — task-sync with its queue at the bound (issue 9: 1,000 jobs × 500 records
 * once took RSS to 1.5 GB and submits from 362 to 70 req/s).
 *
 * Against an upstream that never answers (nothing drains), 10 tokens in turn, 50 at a time:
 *   1. 1-record submits on a near-empty queue (the reference; after a warm-up);
 *   2. 500-record batches up to 500 records below the bound, then 1-record submits (accepted,
 *      the queue nearly full), then the rest of 1,000 batches (refused);
 *   3. at the bound: 500-record and 1-record submits (all refused) and a job's status, with RSS
 *      after each phase; a bare Koa handler is measured in the same run for the ratio.
 * BENCH_UNBOUNDED=1 runs 1,000 batches again with bounds far above them (the old behaviour), then
 * the 1-record submits with all of it queued.
 *
 * Loopback only, bounded loops. Env: BENCH_SECONDS (8), BENCH_CONNECTIONS (50), BENCH_UNBOUNDED.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startProc, stopProc, type Proc } from './procs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const BATCHES = 1000;
const BOUND = 50_000; // TASK_SYNC_MAX_QUEUED_RECORDS's default
const TOKENS = Array.from({ length: 10 }, (_, i) => `bench-token-${i}`);
const RECORDS = Array.from({ length: 500 }, (_, i) => `record-${String(i).padStart(6, '0')}`);
const ONE_RECORD = ['one-record'];

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

const headersFor = (token: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` });
const bodyFor = (upstream: Proc, records: string[]) => JSON.stringify({ webhookUrl: `${upstream.url}/hooks/bench`, records, timeout: 120 });

interface Fill {
  accepted: number;
  refused: string;
  seconds: number;
  firstJobId?: string;
  firstToken?: string;
}

/** `count` POSTs of `body`, CONNECTIONS at a time, tokens in turn. */
async function fill(url: string, body: string, count: number): Promise<Fill> {
  const refused = new Map<number, number>();
  let next = 0;
  let accepted = 0;
  let firstJobId: string | undefined;
  let firstToken: string | undefined;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const token = TOKENS[i % TOKENS.length]!;
      const res = await fetch(`${url}/api/task-sync`, { method: 'POST', headers: headersFor(token), body });
      const json = (await res.json()) as { jobId?: string };
      if (res.status === 202) {
        accepted++;
        firstJobId ??= json.jobId;
        firstToken ??= token;
      } else refused.set(res.status, (refused.get(res.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { accepted, refused: [...refused].map(([s, n]) => `${s}×${n}`).join(' ') || 'none', seconds, firstJobId, firstToken };
}

/** autocannon for BENCH_SECONDS, or for `amount` requests; each connection speaks for one token. */
async function cannon(url: string, opts: { method?: 'GET' | 'POST'; body?: string; token?: string; amount?: number }) {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    ...(opts.amount ? { amount: opts.amount } : { duration: SECONDS }),
    method: opts.method ?? 'GET',
    body: opts.body,
    headers: headersFor(opts.token ?? TOKENS[0]!),
    setupClient: opts.token ? undefined : (client) => client.setHeaders(headersFor(TOKENS[Math.floor(Math.random() * TOKENS.length)]!)),
  });
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .map(([code, s]) => `${code}×${(s as { count: number }).count}`)
    .join(' ');
  // requests.average is per whole second: meaningless for a run of `amount` that lasts under a second.
  const rps = opts.amount ? result.requests.total / result.duration : result.requests.average;
  return `${Math.round(rps)} req/s, p99 ${result.latency.p99} ms (${statuses})`;
}

async function withService(upstream: Proc, env: Record<string, string>, body: (svc: Proc, rss: () => string) => Promise<void>): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
  const svc = await startProc('src/main.ts', {
    DATA_DIR: dataDir,
    FLOWS_DIR: `${dataDir}-no-flows`,
    API_TOKENS: TOKENS.join(','),
    LOG_LEVEL: 'warn',
    TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
    TASK_SYNC_STOP_GRACE_MS: '0',
    ...env,
  });
  try {
    await body(svc, () => `RSS ${rssMb(svc.child.pid!)} MB`);
  } finally {
    await stopProc(svc);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function bounded(upstream: Proc, bare: Proc): Promise<void> {
  console.log(`\n[default bounds: ${BOUND} records, 10,000 per token; 10 tokens]`);
  const batch = bodyFor(upstream, RECORDS);
  const one = bodyFor(upstream, ONE_RECORD);
  await withService(upstream, {}, async (svc, rss) => {
    console.log(`idle: ${rss()}`);
    await cannon(`${svc.url}/api/task-sync`, { method: 'POST', body: one, amount: 200 }); // warm-up, not measured
    // 400 one-record jobs on a near-empty queue: the reference rate.
    console.log(`1-record submits, 200 records queued: ${await cannon(`${svc.url}/api/task-sync`, { method: 'POST', body: one, amount: 400 })}`);
    // Leave room for 400 more one-record jobs (and a little): the queue nearly full, not full.
    const below = Math.floor((BOUND - 200 - 400 - 400 - 1000) / RECORDS.length);
    const f = await fill(svc.url, batch, below);
    console.log(`${below} batches of ${RECORDS.length}: ${f.accepted} accepted in ${f.seconds.toFixed(2)} s = ${Math.round(f.accepted / f.seconds)}/s, refused ${f.refused}; ${rss()}`);
    console.log(`1-record submits, ${600 + f.accepted * RECORDS.length} records queued: ${await cannon(`${svc.url}/api/task-sync`, { method: 'POST', body: one, amount: 400 })}`);
    const rest = await fill(svc.url, batch, BATCHES - below);
    console.log(`${BATCHES - below} more batches: ${rest.accepted} accepted, refused ${rest.refused}, in ${rest.seconds.toFixed(2)} s = ${Math.round((BATCHES - below) / rest.seconds)} answers/s; queue full: ${rss()}`);
    console.log(`at the bound, 500-record submits: ${await cannon(`${svc.url}/api/task-sync`, { method: 'POST', body: batch })}; ${rss()}`);
    console.log(`at the bound, 1-record submits: ${await cannon(`${svc.url}/api/task-sync`, { method: 'POST', body: one })}; ${rss()}`);
    console.log(`bare Koa, 500-record POST: ${await cannon(`${bare.url}/api/task-sync`, { method: 'POST', body: batch })}`);
    if (f.firstJobId) console.log(`at the bound, GET status: ${await cannon(`${svc.url}/api/task-sync/status/${f.firstJobId}`, { token: f.firstToken })}; ${rss()}`);
  });
}

async function unbounded(upstream: Proc): Promise<void> {
  console.log('\n[bounds far above the load: the old, unbounded behaviour]');
  const env = {
    TASK_SYNC_MAX_QUEUED_RECORDS: '10000000',
    TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '10000000',
    TASK_SYNC_MAX_QUEUED_BYTES: String(2 ** 40),
    TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT: String(2 ** 40),
  };
  await withService(upstream, env, async (svc, rss) => {
    console.log(`idle: ${rss()}`);
    const f = await fill(svc.url, bodyFor(upstream, RECORDS), BATCHES);
    console.log(`${BATCHES} batches of ${RECORDS.length}: ${f.accepted} accepted in ${f.seconds.toFixed(2)} s = ${Math.round(f.accepted / f.seconds)}/s; ${rss()}`);
    console.log(`1-record submits, ${f.accepted * RECORDS.length} records queued: ${await cannon(`${svc.url}/api/task-sync`, { method: 'POST', body: bodyFor(upstream, ONE_RECORD), amount: 400 })}; ${rss()}`);
  });
}

async function main(): Promise<void> {
  console.log(`bench:queue — ${CONNECTIONS} connections, ${SECONDS} s per timed run, node ${process.version}`);
  const bare = await startProc('scripts/bench/bare-koa.ts', {});
  const hung = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '600000' }); // answers after 10 min: never, here
  try {
    await bounded(hung, bare);
    if (process.env.BENCH_UNBOUNDED === '1') await unbounded(hung);
  } finally {
    await stopProc(bare);
    hung.child.kill('SIGKILL'); // its open calls would keep it up for 10 min
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
