import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir, type LockSystem } from '../src/store/data-dir-lock.js';
import { StoreRefused } from '../src/store/store-errors.js';
import { errno } from './helpers/recording-file-ops.js';

/** One process per DATA_DIR: lark-bridge.pid, created exclusively; a stale one is taken over, a live one refused. */
let dir: string;
let lockPath: string;
let warnings: string[];
const warn = (m: string) => void warnings.push(m);
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lark-bridge-lock-'));
  lockPath = join(dir, LOCK_FILE);
  warnings = [];
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Above the largest pid Linux hands out (pid_max is at most 2^22): never a running process. */
const NOT_RUNNING = 2 ** 22 + 1;
/** A process that runs for as long as this test does, and is not this one. */
const running = () => process.ppid;

const real: LockSystem = { open, readFile, rm, kill: (pid, signal) => void process.kill(pid, signal) };

function inUse(pid: number): string {
  return `DATA_DIR ${dir} is in use by another lark-bridge (pid ${pid}, lock file ${lockPath}): stop that process first, or give this one its own DATA_DIR (if pid ${pid} is not lark-bridge, delete the lock file)`;
}

describe('data dir lock', () => {
  it('creates lark-bridge.pid holding this pid, and release removes it', async () => {
    expect(LOCK_FILE).toBe('lark-bridge.pid');
    const lock = await lockDataDir(dir, warn);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    expect(warnings).toEqual([]);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
    await lock.release(); // twice is fine
    const again = await lockDataDir(dir, warn);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    await again.release();
  });

  it('refuses a directory whose lock file names another running process, naming the directory, the pid and the file', async () => {
    const pid = running();
    await writeFile(lockPath, `${pid}\n`);
    const err = await lockDataDir(dir, warn).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreRefused);
    expect((err as Error).message).toBe(inUse(pid));
    expect(await readFile(lockPath, 'utf8')).toBe(`${pid}\n`); // left alone
    expect(warnings).toEqual([]);
  });

  it('refuses when the other process exists but belongs to someone else (EPERM)', async () => {
    await writeFile(lockPath, '4242');
    const signalled: Array<[number, number]> = [];
    const sys: LockSystem = {
      ...real,
      kill: (pid, signal) => {
        signalled.push([pid, signal]);
        throw errno('EPERM', 'kill EPERM');
      },
    };
    await expect(lockDataDir(dir, warn, sys)).rejects.toThrow(inUse(4242));
    expect(signalled).toEqual([[4242, 0]]); // signal 0: a probe, nothing is sent
  });

  it('takes over a lock file whose pid is not running, with a warning naming the file and the pid', async () => {
    await writeFile(lockPath, `${NOT_RUNNING}\n`);
    const lock = await lockDataDir(dir, warn);
    expect(warnings).toEqual([`taking over the stale lock file ${lockPath} (pid ${NOT_RUNNING} is not running)`]);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('takes over an empty lock file, and one that names no pid', async () => {
    for (const [text, said] of [
      ['', 'it names no pid'],
      ['  \n', 'it names no pid'],
      ['not-a-pid', 'pid not-a-pid is not running'],
      ['0', 'pid 0 is not running'],
      [`+${running()}`, `pid +${running()} is not running`],
      [`${running()}.0`, `pid ${running()}.0 is not running`],
      [`${running()} 1`, `pid ${running()} 1 is not running`],
    ]) {
      warnings = [];
      await writeFile(lockPath, text!);
      const lock = await lockDataDir(dir, warn);
      expect(warnings, JSON.stringify(text)).toEqual([`taking over the stale lock file ${lockPath} (${said})`]);
      expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
      await lock.release();
    }
  });

  it('takes over silently a lock file naming this very pid (a container restarted with the same pid)', async () => {
    await writeFile(lockPath, `${process.pid}\n`);
    const lock = await lockDataDir(dir, warn);
    expect(warnings).toEqual([]);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });

  it('release leaves a lock file that another process has since taken', async () => {
    const lock = await lockDataDir(dir, warn);
    await writeFile(lockPath, `${running()}\n`);
    await lock.release();
    expect(await readFile(lockPath, 'utf8')).toBe(`${running()}\n`);
    await rm(lockPath);
    await lock.release(); // and a lock file that is gone
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails with the error of a directory it cannot create the lock file in', async () => {
    const missing = join(dir, 'missing');
    await expect(lockDataDir(missing, warn)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('does not remove a lock file another process took between its two reads, and then refuses that process', async () => {
    await writeFile(lockPath, `${NOT_RUNNING}`);
    let reads = 0;
    const sys: LockSystem = {
      ...real,
      async readFile(path, enc) {
        if (++reads === 2) await writeFile(lockPath, `${running()}\n`); // another start took over the stale file meanwhile
        return real.readFile(path, enc);
      },
    };
    await expect(lockDataDir(dir, warn, sys)).rejects.toThrow(inUse(running()));
    expect(await readFile(lockPath, 'utf8')).toBe(`${running()}\n`);
  });

  /** The real system, except that after each of the first `times` removals something else writes the stale lock file again. */
  const comesBack = (times: number) => {
    let removals = 0;
    const sys: LockSystem = {
      ...real,
      rm: (async (path: string, options: { force: boolean }) => {
        removals++;
        await rm(path, options);
        if (removals <= times) await writeFile(lockPath, `${NOT_RUNNING}`);
      }) as LockSystem['rm'],
    };
    return { sys, removals: () => removals };
  };

  it('gives up after five attempts when a stale lock file keeps coming back', async () => {
    await writeFile(lockPath, `${NOT_RUNNING}`);
    const back = comesBack(Infinity);
    const err = await lockDataDir(dir, warn, back.sys).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreRefused);
    expect((err as Error).message).toBe(`could not take the lock file ${lockPath}: it keeps coming back; is another lark-bridge starting on DATA_DIR ${dir}?`);
    expect(back.removals()).toBe(5);
    expect(warnings).toHaveLength(5);
  });

  it('takes the lock at the fifth attempt', async () => {
    await writeFile(lockPath, `${NOT_RUNNING}`);
    const back = comesBack(3);
    const lock = await lockDataDir(dir, warn, back.sys);
    expect(back.removals()).toBe(4);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });
  it('writes the pid, syncs it and closes the file before answering', async () => {
    const calls: string[] = [];
    const sys: LockSystem = {
      ...real,
      open: (async (path: string, flags: string) => {
        const fh = await open(path, flags);
        for (const name of ['writeFile', 'sync', 'close'] as const) {
          const inner = fh[name].bind(fh) as (...a: unknown[]) => Promise<void>;
          (fh as unknown as Record<string, unknown>)[name] = async (...a: unknown[]) => {
            calls.push(`${name} ${flags}`);
            return inner(...a);
          };
        }
        return fh;
      }) as LockSystem['open'],
    };
    const lock = await lockDataDir(dir, warn, sys);
    expect(calls).toEqual(['writeFile wx', 'sync wx', 'close wx']);
    await lock.release();
  });

  it('takes the lock when the lock file goes away between the attempt and the read (its holder stopped)', async () => {
    await writeFile(lockPath, `${running()}\n`);
    let reads = 0;
    const sys: LockSystem = {
      ...real,
      async readFile(path, enc) {
        if (++reads === 1) await rm(lockPath);
        return real.readFile(path, enc);
      },
    };
    const lock = await lockDataDir(dir, warn, sys);
    expect(warnings).toEqual([`taking over the stale lock file ${lockPath} (it names no pid)`]);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });

  it('does not fail when the stale lock file it is about to remove is already gone', async () => {
    await writeFile(lockPath, `${NOT_RUNNING}`);
    let reads = 0;
    const sys: LockSystem = {
      ...real,
      async readFile(path, enc) {
        const text = await real.readFile(path, enc);
        if (++reads === 2) await rm(lockPath); // another start removed it too
        return text;
      },
    };
    const lock = await lockDataDir(dir, warn, sys);
    expect(await readFile(lockPath, 'utf8')).toBe(`${process.pid}\n`);
    await lock.release();
  });

  it('release does not fail when the lock file is already gone', async () => {
    const sys: LockSystem = {
      ...real,
      async readFile(path, enc) {
        const text = await real.readFile(path, enc);
        await rm(lockPath, { force: true }); // removed by hand meanwhile
        return text;
      },
    };
    const lock = await lockDataDir(dir, warn, sys);
    await expect(lock.release()).resolves.toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });
});
