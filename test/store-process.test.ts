import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCK_FILE } from '../src/store/data-dir-lock.js';
import { openJournalStore } from '../src/store/open-store.js';
import { SNAPSHOT_FILE } from '../src/store/snapshot-file.js';
import { runServiceExpectingExit, spawnService, type ServiceProcess } from './helpers/service-process.js';
import { fakeClock } from './helpers/store-clock.js';
import { api, removeDir, tempDir, TOKEN } from './helpers/test-app.js';

const procs: ServiceProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.kill('SIGKILL');
  await Promise.all(dirs.splice(0).map(removeDir));
});

async function dataDir(): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = await tempDir('lark-bridge-proc-');
  dirs.push(dir);
  const flows = `${dir}-flows`;
  dirs.push(flows);
  await mkdir(flows);
  return { dir, env: { DATA_DIR: dir, FLOWS_DIR: flows, API_TOKENS: TOKEN, LOG_LEVEL: 'info' } };
}

async function start(env: Record<string, string>): Promise<ServiceProcess> {
  const p = await spawnService(env);
  procs.push(p);
  return p;
}

/** The lines a refused start printed, without the npm/tsx noise. */
function refusal(output: string): string[] {
  return output.split('\n').filter((l) => l.startsWith('lark-bridge:'));
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

/** A data dir holding archived records in segments, written by the store itself. */
async function withArchive(dir: string, n: number): Promise<void> {
  const store = await openJournalStore({ dir, clock: fakeClock(Date.now()), log: { warn: () => undefined, info: () => undefined }, segment: { maxRecords: 5 } });
  for (let i = 0; i < n; i++) await store.collection('jobs').archive({ id: `old-${i}`, status: 'success' } as never);
  await store.compact();
  await store.close();
}

describe('one process per data directory', () => {
  it('refuses a second instance on the same DATA_DIR with one line naming the directory and the holder', async () => {
    const { dir, env } = await dataDir();
    const first = await start(env);
    const lock = (await readFile(join(dir, LOCK_FILE), 'utf8')).trim();
    expect(lock).toBe(String(first.child.pid));

    const second = await runServiceExpectingExit(env);
    expect(second.code).toBe(2);
    const lines = refusal(second.output);
    expect(lines).toEqual([
      `lark-bridge: cannot start, DATA_DIR ${dir} is in use by another lark-bridge (pid ${first.child.pid}, lock file ${join(dir, LOCK_FILE)}): stop that process first, or give this one its own DATA_DIR (if pid ${first.child.pid} is not lark-bridge, delete the lock file)`,
    ]);
    expect(second.output).not.toMatch(/\n\s+at /); // no stack trace

    // The first one is untouched and still answers; a clean stop frees the directory.
    expect((await api(first.url, '/healthz')).status).toBe(200);
    expect(await first.kill('SIGTERM')).toBe(0);
    expect(await readdir(dir)).not.toContain(LOCK_FILE);
    await start(env);
  });

  it('takes over a stale lock file whose process is gone, with a warning', async () => {
    const { dir, env } = await dataDir();
    const gone = await deadPid();
    await writeFile(join(dir, LOCK_FILE), `${gone}\n`);
    const p = await start(env);
    expect(p.output()).toContain(`taking over the stale lock file ${join(dir, LOCK_FILE)} (pid ${gone} is not running)`);
    expect((await readFile(join(dir, LOCK_FILE), 'utf8')).trim()).toBe(String(p.child.pid));
  });

  it('starts after a SIGKILL left its lock file behind', async () => {
    const { dir, env } = await dataDir();
    const first = await start(env);
    const pid = first.child.pid;
    expect(await first.kill('SIGKILL')).toBeNull();
    expect((await readFile(join(dir, LOCK_FILE), 'utf8')).trim()).toBe(String(pid));
    const second = await start(env);
    expect(second.output()).toContain(`(pid ${pid} is not running)`);
  });
});

describe('damaged files at start', () => {
  it('refuses a truncated or garbage snapshot with one line naming the file and what to do', async () => {
    const { dir, env } = await dataDir();
    const p = await start(env);
    const res = await api(p.url, '/api/task-sync', { body: { webhookUrl: 'http://127.0.0.1:9/hooks/x', recordId: 'a' } });
    expect(res.status).toBe(400); // not in the allow-list: nothing to do with the store
    expect(await p.kill('SIGTERM')).toBe(0);
    const path = join(dir, SNAPSHOT_FILE);
    const good = await readFile(path, 'utf8');
    for (const damaged of [good.slice(0, Math.floor(good.length / 2)), '\u0000garbage\u00ff']) {
      await writeFile(path, damaged);
      const run = await runServiceExpectingExit(env);
      expect(run.code).toBe(2);
      const lines = refusal(run.output);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^lark-bridge: cannot start, ${path} is damaged \\(not valid JSON: .*\\): restore it from a backup, or move it aside to start without the live jobs, runs and keys it holds \\(archived history is kept\\)$`));
      expect(run.output).not.toMatch(/\n\s+at /);
      expect(await readFile(path, 'utf8')).toBe(damaged); // left as it was for the operator
    }
  });

  it('moves a damaged archive segment aside with a warning and starts', async () => {
    const { dir, env } = await dataDir();
    await withArchive(dir, 12);
    const day = (await readdir(join(dir, 'archive', 'jobs')))[0]!;
    const victim = join(dir, 'archive', 'jobs', day, '00000002.seg');
    await writeFile(victim, 'garbage where records were');
    const p = await start(env);
    const warning = p.output().split('\n').find((l) => l.includes('archive segment'));
    expect(warning).toContain(`archive segment ${victim} is damaged (at byte 0`);
    expect(warning).toContain(`moved aside to ${victim}.damaged`);
    expect(JSON.parse(warning!).level).toBe(40); // a warning, one JSON line
    expect((await readdir(join(dir, 'archive', 'jobs', day))).sort()).toEqual(['00000001.seg', '00000002.seg.damaged', '00000003.seg']);
    expect((await api(p.url, '/readyz')).status).toBe(200);
  });

  it('warns loudly when snapshot and journal are missing but archive segments exist, and starts', async () => {
    const { dir, env } = await dataDir();
    await withArchive(dir, 3);
    for (const f of await readdir(dir)) if (f === SNAPSHOT_FILE || f.startsWith('journal-')) await rm(join(dir, f));
    const p = await start(env);
    const warning = p.output().split('\n').find((l) => l.includes('are missing'));
    expect(JSON.parse(warning!)).toMatchObject({ level: 40, msg: expect.stringMatching(/starting with NO live jobs, runs, idempotency keys or seen Lark events/) });
  });

  it('refuses when the snapshot is missing but the journal is there', async () => {
    const { dir, env } = await dataDir();
    const p = await start(env);
    expect(await p.kill('SIGTERM')).toBe(0);
    await rm(join(dir, SNAPSHOT_FILE));
    const run = await runServiceExpectingExit(env);
    expect(run.code).toBe(2);
    expect(refusal(run.output)).toEqual([expect.stringMatching(/snapshot\.json is missing but .*journal-\d+\.log is there: restore snapshot\.json from a backup/)]);
  });
});
