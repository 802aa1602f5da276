/**
 * npm run bench:intake — only the Lark intake row of `npm run bench`: POST /api/v1/lark/callback
 * with encrypted, signed approval_task events (each a new event id and instance, so each runs the
 * whole pipeline), against a bare Koa handler in the same run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventRequests, LARK_CALLBACK, startLarkWorld } from './intake-world.js';
import { CONNECTIONS, load, row, SECONDS } from './load.js';
import { startProc, startService, stopProc } from './procs.js';

const dataDir = await mkdtemp(join(tmpdir(), 'lark-bridge-bench-'));
const bare = await startProc('scripts/bench/bare-koa.ts', {});
const world = await startLarkWorld();
const svc = await startService({ ...world.env, DATA_DIR: dataDir, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn' });
try {
  console.log(`bench:intake — ${CONNECTIONS} connections, ${SECONDS} s per run, node ${process.version}`);
  const b = await load(`${bare.url}${LARK_CALLBACK}`, { requests: eventRequests, pid: bare.child.pid });
  const o = await load(`${svc.url}${LARK_CALLBACK}`, { requests: eventRequests, pid: svc.child.pid });
  console.log(row('Lark intake (encrypted approval_task)', o, b));
} finally {
  await stopProc(svc);
  await world.close();
  await stopProc(bare);
  await rm(dataDir, { recursive: true, force: true });
}
