/**
 * npm run bench:replicas — the POST /api/task-sync 202 path on PostgreSQL: one replica, then two
 * replicas sharing the database behind a round-robin front, each against a bare Koa handler in
 * the same run (req/s, p99, ratio). Not a timed test: it prints figures.
 *
 * The front is nginx when it is installed (a generated loopback config, two upstream servers:
 * what nginx/lark-bridge-replicas.conf does without TLS), else a small round-robin proxy in
 * Node. Each figure is compared with bare Koa in the same shape: direct, behind the front alone,
 * and two bare Koa processes behind the front, so the front's own cost is not counted against us. Every replica's job is a real job: committed (fsync on) before
 * its 202, then sent to a loopback upstream by that replica's worker.
 *
 * Against BENCH_DATABASE_URL (an empty database you can spare; each configuration gets a fresh
 * schema by dropping the store's tables first) or, unset, a throwaway local cluster with fsync on.
 * All traffic stays on 127.0.0.1; each load is bounded (BENCH_SECONDS).
 * Env: BENCH_SECONDS (8), BENCH_CONNECTIONS (50), BENCH_LOG_LEVEL (warn), BENCH_POOL (DATABASE_POOL_MAX per replica, 10),
 * BENCH_FRONT (nginx|node, default: nginx if found).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { startPostgres, type PostgresCluster } from '../../test/helpers/postgres.js';
import { freePort, startProc, stopProc, type Proc } from './procs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'warn';
const POOL = process.env.BENCH_POOL ?? '10';
const TOKEN = 'bench-token';

interface Load {
  rps: number;
  p99: number;
  non2xx: number;
  errors: number;
  statuses: string;
}

interface Front {
  url: string;
  stop(): Promise<void>;
}

async function load(url: string, body: string): Promise<Load> {
  const opts = { url: `${url}/api/task-sync`, connections: CONNECTIONS, method: 'POST' as const, body, headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } };
  await autocannon({ ...opts, duration: 2 }); // warm-up, not measured
  const r = await autocannon({ ...opts, duration: SECONDS });
  const statuses = Object.entries((r as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {})
    .map(([code, s]) => `${code}: ${s.count}`)
    .join(', ');
  return { rps: Math.round(r.requests.average), p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors, statuses };
}

function row(name: string, ours: Load, bare: Load): string {
  return `${name.padEnd(40)} ${String(ours.rps).padStart(6)} req/s  p99 ${String(ours.p99).padStart(4)} ms | bare Koa ${String(bare.rps).padStart(6)} req/s  p99 ${String(bare.p99).padStart(4)} ms | ratio ${((ours.rps / bare.rps) * 100).toFixed(0)}%${ours.non2xx || ours.errors ? `  (non-2xx ${ours.non2xx} [${ours.statuses}], errors ${ours.errors})` : ''}`;
}

function findNginx(): string | undefined {
  if (process.env.BENCH_FRONT === 'node') return undefined;
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** nginx on loopback in front of `backends`, round-robin with keep-alive (as nginx/lark-bridge-replicas.conf, without TLS). */
async function nginxFront(bin: string, backends: string[]): Promise<Front> {
  const dir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-nginx-'));
  const port = await freePort();
  const servers = backends.map((u) => `    server ${new URL(u).host} max_fails=2 fail_timeout=10s;`).join('\n');
  await writeFile(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream replicas {
${servers}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 1024k;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_next_upstream error timeout http_502;
    location / { proxy_pass http://replicas; }
  }
}
`,
  );
  const child = spawn(bin, ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitUntilUp(url, child);
  return {
    url,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGQUIT');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A minimal round-robin HTTP proxy with keep-alive to the backends (when nginx is not installed). */
async function nodeFront(backends: string[]): Promise<Front> {
  let next = 0;
  const targets = backends.map((u) => new URL(u));
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });
  const server: Server = createServer((req, res) => {
    const t = targets[next++ % targets.length]!;
    const up = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent: keepAlive }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      keepAlive.destroy();
    },
  };
}

async function waitUntilUp(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`front exited with ${child.exitCode}`);
    const up = await fetch(`${url}/healthz`, { method: 'GET'}).then(
      (r) => r.status < 500,
      () => false,
    );
    if (up) return;
    if (Date.now() > deadline) throw new Error(`front at ${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Empties the database for the next configuration: the first replica to start migrates again. */
async function freshDatabase(url: string): Promise<void> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  await db.query('DROP TABLE IF EXISTS live_records, archived_records, expiring_keys, lark_bridge_migrations');
  await db.end();
}

async function main(): Promise<void> {
  const nginx = findNginx();
  let cluster: PostgresCluster | undefined;
  let dbUrl = process.env.BENCH_DATABASE_URL;
  if (!dbUrl) {
    cluster = await startPostgres({ durable: true });
    dbUrl = await cluster.createDatabase('bench_replicas');
  }
  const admin = new pg.Client({ connectionString: dbUrl });
  await admin.connect();
  const { rows } = await admin.query<{ v: string; fsync: string; sync: string }>("SELECT version() AS v, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sync");
  await admin.end();
  console.log(`bench:replicas — ${CONNECTIONS} connections, ${SECONDS} s per run, node ${process.version}, ${rows[0]!.v.split(' on ')[0]} (fsync ${rows[0]!.fsync}, synchronous_commit ${rows[0]!.sync}), front: ${nginx ? 'nginx' : 'node round-robin proxy'}, pool ${POOL} per replica`);

  const upstream = await startProc('scripts/bench/upstream.ts', { DELAY_MS: '0' });
  const bareA = await startProc('scripts/bench/bare-koa.ts', {});
  const bareB = await startProc('scripts/bench/bare-koa.ts', {});
  const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
  const env = {
    DATABASE_URL: dbUrl,
    DATA_DIR: dataDir,
    FLOWS_DIR: `${dataDir}-no-flows`,
    API_TOKENS: TOKEN,
    LOG_LEVEL,
    DATABASE_POOL_MAX: POOL,
    TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
    // Every request a real 202: the bounds (per replica) must not refuse a burst the worker lags behind.
    TASK_SYNC_MAX_QUEUED_RECORDS: '2000000',
    TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT: '2000000',
    TASK_SYNC_MAX_QUEUED_BYTES: String(2 ** 30),
    TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT: String(2 ** 30),
  };
  const body = JSON.stringify({ webhookUrl: `${upstream.url}/hooks/bench`, records: ['rec-1'] });
  const front = (backends: string[]) => (nginx ? nginxFront(nginx, backends) : nodeFront(backends));
  const procs: Proc[] = [upstream, bareA, bareB];
  try {
    // The baselines: bare Koa direct, behind the front alone, and two of them behind the front.
    const bareDirect = await load(bareA.url, body);
    const bareFront1 = await front([bareA.url]);
    const bareBehind1 = await load(bareFront1.url, body);
    await bareFront1.stop();
    const bareFront2 = await front([bareA.url, bareB.url]);
    const bareBehind2 = await load(bareFront2.url, body);
    await bareFront2.stop();

    // Each configuration on an empty database with fresh replicas: the jobs of one run do not weigh on the next.
    await freshDatabase(dbUrl);
    const one = await startProc('src/main.ts', env);
    const oneLoad = await load(one.url, body);
    await stopProc(one);

    // One replica behind the front (one upstream server): the front's own cost, without a second replica.
    await freshDatabase(dbUrl);
    const single = await startProc('src/main.ts', env);
    const oneFront = await front([single.url]);
    const oneBehind = await load(oneFront.url, body);
    await oneFront.stop();
    await stopProc(single);

    await freshDatabase(dbUrl);
    const [r1, r2] = await Promise.all([startProc('src/main.ts', env), startProc('src/main.ts', env)]);
    procs.push(r1, r2);
    const replicaFront = await front([r1.url, r2.url]);
    const twoLoad = await load(replicaFront.url, body);
    await replicaFront.stop();

    const via = nginx ? 'nginx' : 'the proxy';
    console.log();
    console.log(row('1 replica on PostgreSQL, direct', oneLoad, bareDirect));
    console.log(row(`1 replica behind ${via}`, oneBehind, bareBehind1));
    console.log(row(`2 replicas behind ${via} (round-robin)`, twoLoad, bareBehind2));
    console.log(`2 replicas vs 1, both behind ${via}: ${(twoLoad.rps / oneBehind.rps).toFixed(2)}x`);
  } finally {
    for (const p of procs) await stopProc(p).catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    await cluster?.dispose();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
