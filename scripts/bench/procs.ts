// Child processes for benchmarks: each server runs alone on loopback, found by its health check.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * BENCH_PIN=1: the servers measured (lark-bridge, bare Koa, the durable floor) run on CPU 0, and
 * this process (autocannon), the upstreams and the Lark emulator on CPU 1, so that the load
 * generator never takes the measured side's CPU: one core each, steadier figures. Unset, all
 * share every core (the default, as before).
 */
const PIN = process.env.BENCH_PIN === '1';
const MEASURED = new Set(['dist/main.js', 'scripts/bench/bare-koa.ts', 'scripts/bench/durable-floor.ts']);
if (PIN && spawnSync('taskset', ['-a', '-cp', '1', String(process.pid)], { stdio: 'ignore' }).status !== 0) {
  throw new Error('BENCH_PIN=1 needs taskset (util-linux) and at least 2 CPUs');
}
const LOGS = mkdtempSync(join(tmpdir(), 'lark-bridge-bench-logs-'));

export interface Proc {
  url: string;
  child: ChildProcess;
  /** Its stdout and stderr, in a file: a pipe read by the benchmark process would steal its CPU. */
  log: string;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Starts a script on a free loopback port (TypeScript through tsx, JavaScript as it is); ready
 * when it prints "listening on URL" or answers /healthz with a 2xx.
 */
export async function startProc(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Proc> {
  const port = String(await freePort());
  const log = join(LOGS, `${script.replace(/\W+/g, '_')}-${port}.log`);
  const fd = openSync(log, 'w');
  const args = [...nodeArgs, ...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), script];
  const [command, argv] = PIN ? ['taskset', ['-c', MEASURED.has(script) ? '0' : '1', process.execPath, ...args]] : [process.execPath, args];
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', ...env, PORT: port },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const output = () => readFileSync(log, 'utf8');
  const url = await new Promise<string>((resolve, reject) => {
    const finish = (err: Error | null, u?: string) => {
      clearTimeout(timer);
      clearInterval(poll);
      child.removeAllListeners('exit');
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else resolve(u!);
    };
    const timer = setTimeout(() => finish(new Error(`${script} did not start within 60 s: ${output().slice(-2000)}`)), 60_000);
    const poll = setInterval(() => {
      const m = /listening on (http:\/\/[\d.:]+)/.exec(output());
      if (m) return finish(null, m[1]!);
      fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok && finish(null, `http://127.0.0.1:${port}`), () => undefined);
    }, 100);
    child.once('exit', (code) => finish(new Error(`${script} exited ${code}: ${output().slice(-2000)}`)));
  });
  return { url, child, log };
}

/**
 * The service as production runs it: the compiled dist/main.js (built first when src/ changed,
 * as `npm start` does), with source maps on. BENCH_CPU_PROF=DIR profiles it.
 */
export async function startService(env: Record<string, string>): Promise<Proc> {
  const built = spawnSync(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: ROOT, stdio: 'inherit' });
  if (built.status !== 0) throw new Error('npm run build failed');
  // BENCH_CPU_PROF=DIR: the service writes a V8 CPU profile there when it stops (open it in Chrome DevTools).
  const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
  // BENCH_NODE_ARGS: more node flags for the service (--trace-gc, --max-semi-space-size=64, …).
  const extra = process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(' ').filter(Boolean) : [];
  return startProc('dist/main.js', env, ['--enable-source-maps', ...profile, ...extra]);
}

export async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await exited;
}
