import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every process below `root`, from /proc (ppid is the 4th field of /proc/<pid>/stat). */
function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(name), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = [];
  const walk = (pid: number) => {
    for (const [child, parent] of parentOf) if (parent === pid) (found.push(child), walk(child));
  };
  walk(root);
  return found;
}

/** Alive and not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

describe('npm start', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await removeDir(d);
  });

  it('builds dist/ when it is stale, runs the compiled service, and stops it (no orphan) when npm gets SIGTERM', async () => {
    const dataDir = await tempDir('lark-bridge-npm-start-');
    dirs.push(dataDir);
    // As after a pull that changed src/: the stamp is older than the sources (here: gone), so prestart builds.
    rmSync(join(ROOT, 'dist/.build-stamp'), { force: true });
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    npm.stdout.on('data', (d) => (out += d));
    npm.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    let ours: number[] = [];
    try {
      const url = await waitFor(() => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1], 120_000, 100);
      const port = Number(new URL(url).port);
      expect(out).toContain('building dist/');
      expect(out).toMatch(/> (exec )?node --enable-source-maps dist\/main\.js/);
      expect(await portOpen(port)).toBe(true);
      ours = descendants(npm.pid!);
      expect(ours.length).toBeGreaterThan(0);

      process.kill(npm.pid!, 'SIGTERM');
      const stopped = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
      expect(stopped).not.toBe('hung');
      // The server stopped itself (SIGTERM reached it through npm), closed its port, and left no process behind.
      expect(out).toContain('"msg":"stopped"');
      expect(await portOpen(port)).toBe(false);
      await waitFor(() => ours.every((pid) => !alive(pid)), 5_000);
    } finally {
      for (const pid of [npm.pid!, ...ours]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 180_000);
});
