import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreRefused } from './store-errors.js';

export const LOCK_FILE = 'lark-bridge.pid';

export interface DataDirLock {
  release(): Promise<void>;
}

/** What the lock asks of the system; a test stands in for another process through it (EPERM, a racing start). */
export interface LockSystem {
  open: typeof open;
  readFile(path: string, encoding: 'utf8'): Promise<string>;
  rm: typeof rm;
  kill(pid: number, signal: number): void;
}

const nodeLockSystem: LockSystem = { open, readFile, rm, kill: (pid, signal) => void process.kill(pid, signal) };

function isRunning(sys: LockSystem, pid: number): boolean {
  try {
    sys.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

async function readPid(sys: LockSystem, path: string): Promise<string> {
  return (await sys.readFile(path, 'utf8').catch(() => '')).trim();
}

/**
 * One process per data directory, as PostgreSQL's postmaster.pid: the lock file is created
 * exclusively and holds our pid. A file whose pid is not running (a crash, a reboot) is taken
 * over with a warning; a file naming our own pid is a previous life of this process (a container
 * restarts with the same pid). Two instances on one directory would both resume every job.
 */
export async function lockDataDir(dir: string, warn: (message: string) => void, sys: LockSystem = nodeLockSystem): Promise<DataDirLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await sys.open(path, 'wx');
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return {
        async release() {
          if ((await readPid(sys, path)) === String(process.pid)) await sys.rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = await readPid(sys, path);
    const pid = /^\d+$/.test(text) ? Number(text) : NaN;
    if (pid > 0 && pid !== process.pid && isRunning(sys, pid)) {
      throw new StoreRefused(
        `DATA_DIR ${dir} is in use by another lark-bridge (pid ${pid}, lock file ${path}): stop that process first, or give this one its own DATA_DIR (if pid ${pid} is not lark-bridge, delete the lock file)`,
      );
    }
    if (pid !== process.pid) warn(`taking over the stale lock file ${path} (${text ? `pid ${text} is not running` : 'it names no pid'})`);
    // Only remove what we just read: a process that took the lock meanwhile keeps it.
    if ((await readPid(sys, path)) === text) await sys.rm(path, { force: true });
  }
  throw new StoreRefused(`could not take the lock file ${path}: it keeps coming back; is another lark-bridge starting on DATA_DIR ${dir}?`);
}
