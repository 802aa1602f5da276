import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { JournalStore } from '../src/store/journal-store.js';
import { V1_BACKUP_DIR } from '../src/store/legacy-import.js';
import { openJournalStore, type JournalStoreOptions } from '../src/store/open-store.js';
import { StoreRefused } from '../src/store/store-errors.js';
import { FaultyFileOps } from './helpers/faulty-file-ops.js';
import { fakeClock } from './helpers/store-clock.js';
import { removeDir, tempDir } from './helpers/test-app.js';

/**
 * test/fixtures/store-v1 was written by the v1 json-file store (src/store/json-file-store.ts as of
 * commit ce77415): live.json plus archive/<collection>/<day>/<seq>.json, segments of 2 records.
 */
const FIXTURE = fileURLToPath(new URL('./fixtures/store-v1', import.meta.url));
const NOW = Date.parse('2026-11-20T12:00:00Z');
const ARCHIVED_JOBS = ['done-1', 'done-2', '__proto__', 'constructor', '审批-42', '🚀-job', 'مرحبا'];

const dirs: string[] = [];
const stores: JournalStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.abandon();
  await Promise.all(dirs.splice(0).map(removeDir));
});

async function v1Dir(): Promise<string> {
  const d = await tempDir('lark-bridge-upgrade-');
  dirs.push(d);
  await cp(FIXTURE, d, { recursive: true });
  return d;
}

async function open(d: string, extra: Partial<JournalStoreOptions> = {}) {
  const infos: string[] = [];
  const warnings: string[] = [];
  const store = await openJournalStore({ dir: d, clock: fakeClock(NOW), log: { warn: (m) => warnings.push(m), info: (m) => infos.push(m) }, ...extra });
  stores.push(store);
  return { store, infos, warnings };
}

async function expectEverythingImported(store: JournalStore): Promise<void> {
  const jobs = store.collection<{ id: string; status: string }>('jobs');
  expect((await jobs.live()).map((j) => [j.id, j.status]).sort()).toEqual([
    ['live-queued', 'queued'],
    ['live-running', 'running'],
  ]);
  for (const id of ARCHIVED_JOBS) expect(await jobs.get(id), id).toMatchObject({ id, status: 'success', results: [{ recordId: `rec-${id}` }] });
  expect(await jobs.archivedCount()).toBe(7);
  const runs = store.collection<{ id: string; n: number }>('runs');
  // Brought back to live by a Retry after it was archived (newer updatedAt): it stays live.
  expect(await runs.live()).toEqual([{ id: 'run-retried', n: 2, updatedAt: '2026-11-20T09:00:05.000Z' }]);
  // Left in both by a crash between v1's two writes: the archived copy wins, as v1 decided at start.
  expect(await runs.get('run-crashed')).toEqual({ id: 'run-crashed', n: 3, updatedAt: '2026-11-20T09:00:06.000Z' });
  expect(await runs.archivedCount()).toBe(2);
  const idem = store.keys<{ jobId: string }>('idempotency');
  expect(await idem.get('tok\u0000key-1')).toEqual({ jobId: 'live-queued', fingerprint: 'f1' });
  expect(await idem.get('tok\u0000__proto__')).toEqual({ jobId: 'done-1', fingerprint: 'f2' });
  const events = store.keys<number>('lark-events');
  expect(await events.get('ev-fresh')).toBe(1);
  expect(await events.get('ev-old')).toBeUndefined(); // expired before the upgrade
}

describe('upgrade from the v1 json-file store', () => {
  it('converts a v1 data dir at first start, losing nothing, and keeps the v1 files aside', async () => {
    const d = await v1Dir();
    const { store, infos } = await open(d);
    await expectEverythingImported(store);
    expect(infos).toEqual([
      expect.stringContaining('imported the v1 store'),
      expect.stringContaining(`moved to ${join(d, V1_BACKUP_DIR)}`),
    ]);
    expect(infos[0]).toMatch(/3 live records, 9 archived records, 3 unexpired keys/);
    const top = await readdir(d);
    expect(top).not.toContain('live.json');
    expect(top).toEqual(expect.arrayContaining(['snapshot.json', 'journal-00000001.log', V1_BACKUP_DIR]));
    expect(await readFile(join(d, V1_BACKUP_DIR, 'live.json'), 'utf8')).toBe(await readFile(join(FIXTURE, 'live.json'), 'utf8'));
    expect(await readdir(join(d, V1_BACKUP_DIR, 'archive', 'jobs', '2026-11-19'))).toEqual(['00000001.json', '00000002.json']);
    expect(await readdir(join(d, 'archive', 'jobs', '2026-11-19'))).toEqual(['00000001.seg']);

    // It goes on as a journal store: writes, restarts, no second import.
    await store.collection<{ id: string; n: number }>('other').put({ id: 'new', n: 1 });
    store.abandon();
    const { store: again, infos: second } = await open(d);
    expect(second).toEqual([]);
    await expectEverythingImported(again);
    expect(await again.collection('other').get('new')).toEqual({ id: 'new', n: 1 });
  });

  it('imports again from the untouched v1 files when the first import is cut short', async () => {
    const d = await v1Dir();
    const ops = new FaultyFileOps();
    ops.fault = { at: 'rename', code: 'EIO', file: /^snapshot\.json$/ }; // the import's commit point fails
    await expect(open(d, { fileOps: ops })).rejects.toThrow(/EIO/);
    expect(await readdir(d)).toContain('live.json');
    expect((await stat(join(d, 'archive', 'jobs', '2026-11-19', '00000001.seg'))).size).toBeGreaterThan(0); // half-done work left behind
    const { store } = await open(d);
    await expectEverythingImported(store);
    const segs = await readdir(join(d, 'archive', 'jobs', '2026-11-19'));
    expect(segs).toEqual(['00000001.seg']);
  });

  it('refuses a damaged v1 live.json, naming it', async () => {
    const d = await v1Dir();
    await writeFile(join(d, 'live.json'), '{"version":1,"records":{"jobs":{"a":');
    const err = await open(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreRefused);
    expect((err as Error).message).toMatch(new RegExp(`${join(d, 'live.json')} \\(the store of the previous version\\) is damaged \\(not valid JSON`));
    expect(await readdir(d)).toContain('live.json');
  });

  it('moves a damaged v1 archive segment aside and imports the rest', async () => {
    const d = await v1Dir();
    const bad = join(d, 'archive', 'jobs', '2026-11-19', '00000002.json');
    await writeFile(bad, '{"lastAt":1,"rec');
    const { store, warnings } = await open(d);
    expect(warnings).toEqual([expect.stringContaining(`v1 archive segment ${bad} is damaged`)]);
    const jobs = store.collection('jobs');
    expect(await jobs.archivedCount()).toBe(6);
    expect(await jobs.get('done-1')).toBeTruthy();
    expect(await readdir(join(d, V1_BACKUP_DIR, 'archive', 'jobs', '2026-11-19'))).toEqual(['00000001.json']);
    expect(await readdir(join(d, 'archive', 'jobs', '2026-11-19'))).toEqual(expect.arrayContaining(['00000002.json.damaged']));
  });
});
