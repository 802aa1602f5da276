// Child processes for benchmarks: each server runs alone on loopback, found by its health check.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Proc {
  url: string;
  child: ChildProcess;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Starts a script on a free loopback port; ready when it prints "listening on" or answers /healthz. */
export async function startProc(script: string, env: Record<string, string>): Promise<Proc> {
  const port = String(await freePort());
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', ...env, PORT: port },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const finish = (err: Error | null, u?: string) => {
      clearTimeout(timer);
      clearInterval(poll);
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else resolve(u!);
    };
    const timer = setTimeout(() => finish(new Error(`${script} did not start: ${out}`)), 60_000);
    const poll = setInterval(() => {
      fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok && finish(null, `http://127.0.0.1:${port}`), () => undefined);
    }, 100);
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      const m = /listening on (http:\/\/[\d.:]+)/.exec(out);
      if (m) finish(null, m[1]!);
    });
    child.once('exit', (code) => finish(new Error(`${script} exited ${code}: ${out}`)));
  });
  child.removeAllListeners('exit');
  child.stdout!.resume(); // keep draining its logs
  return { url, child };
}

export async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await exited;
}
