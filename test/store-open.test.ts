import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { putChange } from '../src/store/change.js';
import { LOCK_FILE } from '../src/store/data-dir-lock.js';
import { nodeFileOps, type FileOps } from '../src/store/file-ops.js';
import { textFrame } from '../src/store/frame.js';
import type { JournalStore } from '../src/store/journal-store.js';
import { JOURNAL_MAGIC, journalFileName } from '../src/store/journal.js';
import { openJournalStore, openStore, type JournalStoreOptions } from '../src/store/open-store.js';
import { SNAPSHOT_FILE } from '../src/store/snapshot-file.js';
import { StoreRefused } from '../src/store/store-errors.js';
import type { Store } from '../src/store/store.js';
import { errno, RecordingFileOps } from './helpers/recording-file-ops.js';
import { fakeClock, type FakeClock } from './helpers/store-clock.js';

/** Opening the embedded store: DATA_DIR checks, the lock, snapshot + journal replay, and what it warns about. */
const DAY = 86_400_000;
const V1_FIXTURE = fileURLToPath(new URL('./fixtures/store-v1', import.meta.url));
/** A mutant that leaves a promise hanging fails here in seconds, not at Stryker's timeout. */
const FAST = { timeout: 5_000 };

interface Rec {
  id: string;
  n: number;
}

let root: string;
let dir: string;
let clock: FakeClock;
let warnings: string[];
let infos: string[];
const open: Store[] = [];
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'lark-bridge-open-'));
  dir = join(root, 'data');
  clock = fakeClock();
  warnings = [];
  infos = [];
});
afterEach(async () => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  for (const s of open.splice(0)) await s.close().catch(() => undefined);
  await rm(root, { recursive: true, force: true });
});

async function start(extra: Partial<JournalStoreOptions> = {}): Promise<JournalStore> {
  const store = await openJournalStore({ dir, clock, log: { warn: (m) => void warnings.push(m), info: (m) => void infos.push(m) }, ...extra });
  open.push(store);
  return store;
}

/** Closes a store and takes it off the list closed after each test. */
async function stop(store: Store): Promise<void> {
  await store.close();
  open.splice(open.indexOf(store), 1);
}

async function refusal(extra: Partial<JournalStoreOptions> = {}): Promise<string> {
  const err = await start(extra).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(StoreRefused);
  return (err as Error).message;
}

const journalPath = (gen: number) => join(dir, journalFileName(gen));
const journalWith = (...records: Rec[]) => Buffer.concat([JOURNAL_MAGIC, ...records.map((r) => textFrame(putChange('jobs', JSON.stringify(r))))]);
const ids = async (store: Store, name = 'jobs') => (await store.collection<Rec>(name).live()).map((r) => r.id).sort();
const snapshotDoc = async () => JSON.parse(await readFile(join(dir, SNAPSHOT_FILE), 'utf8'));

describe('openJournalStore: a new DATA_DIR', FAST, () => {
  it('creates the directory with an empty snapshot (journal 1), journal 1 with its header and the lock, and says nothing', async () => {
    const store = await start();
    expect((await readdir(dir)).sort()).toEqual([journalFileName(1), LOCK_FILE, SNAPSHOT_FILE]);
    expect(await snapshotDoc()).toEqual({
      format: 'lark-bridge-store',
      version: 2,
      journal: 1,
      writtenAt: new Date(clock.now()).toISOString(),
      archive: {},
      records: {},
      keys: {},
    });
    expect(await readFile(journalPath(1))).toEqual(JOURNAL_MAGIC);
    expect(warnings).toEqual([]);
    expect(infos).toEqual([]);
    await stop(store);
    expect(await readdir(dir)).not.toContain(LOCK_FILE);
  });

  it('keeps what was written across a restart, and appends after it', async () => {
    const store = await start();
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.collection<Rec>('runs').put({ id: 'r', n: 1 });
    await store.keys<string>('idem').set('k', 'v', clock.now() + DAY);
    await stop(store);
    const again = await start();
    expect(await ids(again)).toEqual(['a']);
    expect(await ids(again, 'runs')).toEqual(['r']);
    expect(await again.keys<string>('idem').get('k')).toBe('v');
    await again.collection<Rec>('jobs').put({ id: 'b', n: 2 });
    await stop(again);
    const third = await start();
    expect(await ids(third)).toEqual(['a', 'b']);
    expect(warnings).toEqual([]);
  });

  it('loads the keys of the snapshot that have not expired; a key expiring this very ms is gone', async () => {
    const store = await start();
    const keys = store.keys<number>('k');
    await keys.set('past', 1, clock.now() + 10);
    await keys.set('now', 2, clock.now() + 20);
    await keys.set('later', 3, clock.now() + 21);
    await store.compact();
    await stop(store);
    clock.advance(20);
    const again = await start();
    expect(await again.keys<number>('k').size()).toBe(1);
    expect(await again.keys<number>('k').get('later')).toBe(3);
  });

  it('removes a snapshot temp file left by a compaction cut short', async () => {
    await mkdir(dir);
    await writeFile(join(dir, `.${SNAPSHOT_FILE}.tmp`), 'half');
    await start();
    expect(await readdir(dir)).not.toContain(`.${SNAPSHOT_FILE}.tmp`);
  });

  it('tells onCommit about each group commit', async () => {
    const commits: number[] = [];
    const store = await start({ onCommit: (_s, bytes) => void commits.push(bytes) });
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    expect(commits).toEqual([textFrame(putChange('jobs', JSON.stringify({ id: 'a', n: 1 }))).length]);
  });
});

describe('openJournalStore: refusing to start', FAST, () => {
  it('refuses a DATA_DIR that is a file', async () => {
    await writeFile(dir, 'x');
    expect(await refusal()).toBe(`DATA_DIR ${dir} is not a directory: point DATA_DIR at a directory`);
  });

  for (const code of ['EEXIST', 'ENOTDIR']) {
    it(`refuses a DATA_DIR it cannot create because of ${code}: not a directory`, async () => {
      const fileOps: FileOps = { ...nodeFileOps, mkdir: async () => Promise.reject(errno(code)) };
      expect(await refusal({ fileOps })).toBe(`DATA_DIR ${dir} is not a directory: point DATA_DIR at a directory`);
    });
  }

  for (const code of ['EACCES', 'EROFS']) {
    it(`refuses a DATA_DIR it cannot create or write (${code}), naming the code`, async () => {
      const fileOps: FileOps = { ...nodeFileOps, mkdir: async () => Promise.reject(errno(code)) };
      expect(await refusal({ fileOps })).toBe(`DATA_DIR ${dir} cannot be created or written (${code}): fix its permissions or point DATA_DIR elsewhere`);
    });
  }

  it('passes any other error of creating DATA_DIR on as it is', async () => {
    const eio = errno('EIO', 'EIO: i/o error, mkdir');
    const fileOps: FileOps = { ...nodeFileOps, mkdir: async () => Promise.reject(eio) };
    await expect(start({ fileOps })).rejects.toBe(eio);
  });

  it('refuses a DATA_DIR another running process holds, naming the directory and the pid, and touches nothing', async () => {
    await mkdir(dir);
    await writeFile(join(dir, LOCK_FILE), `${process.ppid}\n`);
    expect(await refusal()).toMatch(new RegExp(`^DATA_DIR ${dir} is in use by another lark-bridge \\(pid ${process.ppid}, lock file ${join(dir, LOCK_FILE)}\\)`));
    expect(await readdir(dir)).toEqual([LOCK_FILE]);
  });

  it('refuses a damaged snapshot, naming it, and frees the lock', async () => {
    const store = await start();
    await stop(store);
    await writeFile(join(dir, SNAPSHOT_FILE), '{"format":');
    expect(await refusal()).toMatch(new RegExp(`^${join(dir, SNAPSHOT_FILE)} is damaged \\(not valid JSON`));
    expect(await readdir(dir)).not.toContain(LOCK_FILE);
  });

  it('refuses when the snapshot is gone but a journal is there, naming both, and frees the lock', async () => {
    const store = await start();
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.compact();
    await stop(store);
    await rm(join(dir, SNAPSHOT_FILE));
    expect(await refusal()).toBe(
      `${join(dir, SNAPSHOT_FILE)} is missing but ${journalPath(2)} is there: restore snapshot.json from a backup (the journal alone is not the data), or move the journal-*.log files aside to start without the live jobs, runs and keys`,
    );
    expect(await readdir(dir)).not.toContain(LOCK_FILE);
    expect(await readdir(dir)).not.toContain(SNAPSHOT_FILE);
  });
});

describe('openJournalStore: replaying the journal', FAST, () => {
  async function withThree(): Promise<void> {
    const store = await start();
    for (let i = 0; i < 3; i++) await store.collection<Rec>('jobs').put({ id: `r${i}`, n: i });
    store.abandon();
    open.splice(open.indexOf(store), 1);
  }

  it('cuts a torn tail at the last good record, says where and why, and appends after it', async () => {
    await withThree();
    const full = await readFile(journalPath(1));
    await writeFile(journalPath(1), full.subarray(0, full.length - 5));
    const goodEnd = full.length - textFrame(putChange('jobs', JSON.stringify({ id: 'r2', n: 2 }))).length;
    const ops = new RecordingFileOps();
    const store = await start({ fileOps: ops });
    const cut = ops.log.indexOf(`truncate ${journalFileName(1)} ${goodEnd}`);
    expect(cut).toBeGreaterThan(0);
    expect(ops.log.slice(cut - 1, cut + 2)).toEqual([`open ${journalFileName(1)}`, `truncate ${journalFileName(1)} ${goodEnd}`, `close ${journalFileName(1)}`]);
    expect(warnings).toEqual([
      `journal ${journalPath(1)}: cut at byte ${goodEnd} of ${full.length - 5} because the last record is cut short; the changes after that point are dropped (a write cut short by a crash or power loss ends this way, and was never acknowledged)`,
    ]);
    expect((await stat(journalPath(1))).size).toBe(goodEnd);
    expect(await ids(store)).toEqual(['r0', 'r1']);
    await store.collection<Rec>('jobs').put({ id: 'next', n: 9 });
    store.abandon();
    open.splice(open.indexOf(store), 1);
    warnings = [];
    const again = await start();
    expect(await ids(again)).toEqual(['next', 'r0', 'r1']);
    expect(warnings).toEqual([]);
  });

  it('stops at a record that holds no change it knows, dropping what follows', async () => {
    await withThree();
    const before = (await stat(journalPath(1))).size;
    await appendFile(journalPath(1), Buffer.concat([textFrame('["zz","jobs"]'), textFrame(putChange('jobs', '{"id":"after","n":1}'))]));
    const store = await start();
    expect(warnings).toEqual([expect.stringContaining(`journal ${journalPath(1)}: cut at byte ${before} of `)]);
    expect(warnings[0]).toContain('because a record holds no change this version knows');
    expect(await ids(store)).toEqual(['r0', 'r1', 'r2']);
    expect((await stat(journalPath(1))).size).toBe(before);
  });

  it('deletes journal generations older than the snapshot (a compaction that did not clean up)', async () => {
    const store = await start();
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.compact();
    await stop(store);
    expect(await readdir(dir)).not.toContain(journalFileName(1));
    await writeFile(journalPath(1), journalWith({ id: 'stale', n: 0 }));
    const again = await start();
    expect(await readdir(dir)).not.toContain(journalFileName(1));
    expect(await ids(again)).toEqual(['a']);
    expect(warnings).toEqual([]);
  });

  it('warns when the generation the snapshot starts from is missing, and replays the later ones', async () => {
    const store = await start();
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.compact();
    await stop(store);
    const { writtenAt } = await snapshotDoc();
    await rm(journalPath(2));
    await writeFile(journalPath(3), journalWith({ id: 'in-3', n: 3 }));
    const again = await start();
    expect(warnings).toEqual([
      `${journalPath(2)} is missing: the changes made after ${writtenAt} (the snapshot) are lost; if you have a backup of it, stop now and restore it`,
    ]);
    expect(await ids(again)).toEqual(['a', 'in-3']);
    await again.collection<Rec>('jobs').put({ id: 'more', n: 4 });
    await stop(again);
    expect(await readFile(journalPath(3))).toEqual(journalWith({ id: 'in-3', n: 3 }, { id: 'more', n: 4 }));
  });

  it('warns about a gap between generations, replays both sides and appends to the last', async () => {
    const store = await start();
    await store.compact();
    await stop(store);
    await writeFile(journalPath(2), journalWith({ id: 'in-2', n: 2 }));
    await writeFile(journalPath(5), journalWith({ id: 'in-5', n: 5 }));
    await writeFile(journalPath(6), journalWith({ id: 'in-6', n: 6 }));
    const again = await start();
    expect(warnings).toEqual([`journal generations 3 to 4 are missing in ${dir}: changes in them are lost`]);
    expect(await ids(again)).toEqual(['in-2', 'in-5', 'in-6']);
    await again.collection<Rec>('jobs').put({ id: 'more', n: 7 });
    await stop(again);
    expect(await readFile(journalPath(6))).toEqual(journalWith({ id: 'in-6', n: 6 }, { id: 'more', n: 7 }));
    warnings = [];
    const third = await start();
    expect(await ids(third)).toEqual(['in-2', 'in-5', 'in-6', 'more']);
  });

  it('starts the generation the snapshot names when every journal is gone', async () => {
    const store = await start();
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.compact();
    await store.collection<Rec>('jobs').put({ id: 'lost', n: 2 });
    await stop(store);
    await rm(journalPath(2));
    const again = await start();
    expect(warnings).toEqual([expect.stringContaining(`${journalPath(2)} is missing`)]);
    expect(await readFile(journalPath(2))).toEqual(JOURNAL_MAGIC);
    await again.collection<Rec>('jobs').put({ id: 'b', n: 3 });
    await stop(again);
    warnings = [];
    const third = await start();
    expect(await ids(third)).toEqual(['a', 'b']);
    expect(warnings).toEqual([]);
  });
});

describe('openJournalStore: archive segments', FAST, () => {
  async function archivedInSegments(names = ['old-1', 'old-2']): Promise<void> {
    const store = await start();
    for (const id of names) await store.collection<Rec>('jobs').archive({ id, n: 0 });
    await store.compact();
    await stop(store);
  }

  async function segmentFiles(collection: string): Promise<string[]> {
    const base = join(dir, 'archive', collection);
    const out: string[] = [];
    for (const day of await readdir(base).catch(() => [])) for (const f of await readdir(join(base, day))) out.push(`${day}/${f}`);
    return out;
  }

  it('loads the segments of the collections under archive/, and only directories named as collections', async () => {
    await archivedInSegments();
    expect(await segmentFiles('jobs')).toHaveLength(1); // two small records: one segment (4 MiB, 10 000 records by default)
    const odd = ['bad name', 'x'.repeat(65), '.hidden'];
    for (const name of [...odd, 'ghost_1-x', 'y'.repeat(64)]) await cp(join(dir, 'archive', 'jobs'), join(dir, 'archive', name), { recursive: true });
    const store = await start();
    expect(await store.collection<Rec>('jobs').get('old-1')).toEqual({ id: 'old-1', n: 0 });
    // A collection the snapshot does not know has committed nothing: its segment files are dropped.
    expect(await segmentFiles('ghost_1-x')).toEqual([]);
    expect(await segmentFiles('y'.repeat(64))).toEqual([]);
    expect(await store.collection<Rec>('ghost_1-x').get('old-1')).toBeUndefined();
    // Directories that are not collections are not the store's: left alone.
    for (const name of odd) expect(await segmentFiles(name), name).toHaveLength(1);
    expect(warnings).toEqual([]);
  });

  it('warns loudly when only archive segments are left, starts with them, and records how far they go', async () => {
    await archivedInSegments();
    await rm(join(dir, SNAPSHOT_FILE));
    for (const f of (await readdir(dir)).filter((n) => n.startsWith('journal-'))) await rm(join(dir, f));
    const store = await start();
    expect(warnings).toEqual([
      `${join(dir, SNAPSHOT_FILE)} and the journal are missing but archive segments are there: starting with NO live jobs, runs, idempotency keys or seen Lark events; if this is not a first start, stop now and restore snapshot.json and journal-*.log from a backup`,
    ]);
    expect(await store.collection<Rec>('jobs').get('old-2')).toEqual({ id: 'old-2', n: 0 });
    const doc = await snapshotDoc();
    expect(doc.journal).toBe(1);
    expect(doc.archive.jobs.seq).toBe(1);
    expect(doc.archive.jobs.bytes).toBeGreaterThan(0);
    expect(await readFile(journalPath(1))).toEqual(JOURNAL_MAGIC);
  });

  it('starts without a warning on an archive directory that holds no segments', async () => {
    await mkdir(join(dir, 'archive', 'jobs'), { recursive: true });
    await start();
    expect(warnings).toEqual([]);
    expect((await snapshotDoc()).archive).toEqual({ jobs: { seq: 0, bytes: 0 } });
  });

  it('keeps archived records 7 days by default, and as long as a collection’s own retention says', async () => {
    const t0 = clock.now();
    const store = await start({ retention: { runs: { maxAgeMs: DAY, maxCount: 100 } } });
    await store.collection<Rec>('jobs').archive({ id: 'j', n: 0 });
    await store.collection<Rec>('runs').archive({ id: 'r', n: 0 });
    await store.compact();
    expect(await store.prune(t0 + DAY)).toMatchObject({ archivedRemoved: 0 });
    expect(await store.prune(t0 + DAY + 1)).toMatchObject({ archivedRemoved: 1 });
    expect(await store.collection<Rec>('runs').get('r')).toBeUndefined();
    expect(await store.prune(t0 + 7 * DAY)).toMatchObject({ archivedRemoved: 0 });
    expect(await store.prune(t0 + 7 * DAY + 1)).toMatchObject({ archivedRemoved: 1 });
    expect(await store.collection<Rec>('jobs').get('j')).toBeUndefined();
  });

  it('takes the segment limits it is given', async () => {
    const store = await start({ segment: { maxRecords: 1 } });
    for (const id of ['a', 'b', 'c']) await store.collection<Rec>('jobs').archive({ id, n: 0 });
    await store.compact();
    await stop(store);
    expect(await segmentFiles('jobs')).toHaveLength(3);
  });
});

describe('openJournalStore: compaction defaults', FAST, () => {
  // 4 KB: more than twice the empty snapshot (the other bound of the threshold).
  const big = { id: 'a', n: 1, pad: 'x'.repeat(4000) };

  it('does not compact a journal of a few KB by size (32 MiB by default)', async () => {
    const store = await start();
    await store.collection<Rec>('jobs').put(big);
    await store.collection<Rec>('jobs').put({ id: 'b', n: 2 }); // the commit after the journal passed the threshold starts it
    await new Promise((r) => setImmediate(r)); // where a compaction due by size would start
    await stop(store);
    expect((await readdir(dir)).filter((n) => n.startsWith('journal-'))).toEqual([journalFileName(1)]);
  });

  it('compacts by size at the threshold it is given', async () => {
    const store = await start({ compactAtBytes: 1 });
    await store.collection<Rec>('jobs').put(big);
    await store.collection<Rec>('jobs').put({ id: 'b', n: 2 }); // the commit after the journal passed the threshold starts it
    await new Promise((r) => setImmediate(r));
    await stop(store);
    expect((await readdir(dir)).filter((n) => n.startsWith('journal-'))).toEqual([journalFileName(2)]);
  });

  it('waits for a journal twice the size of the snapshot it started from, however low the threshold', async () => {
    const first = await start();
    await first.collection<Rec>('jobs').put(big);
    await first.compact(); // a snapshot of about 4 KB
    await stop(first);
    const store = await start({ compactAtBytes: 1 });
    for (let i = 0; i < 3; i++) await store.collection<Rec>('jobs').put({ id: `small-${i}`, n: i });
    await new Promise((r) => setImmediate(r));
    await stop(store);
    expect((await readdir(dir)).filter((n) => n.startsWith('journal-'))).toEqual([journalFileName(2)]);
  });

  /** Puts one change, lets the store's age check run with the clock `ageMs` on, and answers the journal files after close. */
  async function afterAge(ageMs: number): Promise<string[]> {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const store = await start();
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    clock.advance(ageMs);
    vi.advanceTimersByTime(60_000);
    await new Promise((r) => setImmediate(r)); // where a compaction due by age starts
    await stop(store);
    return (await readdir(dir)).filter((n) => n.startsWith('journal-'));
  }

  it('does not compact a journal whose changes are younger than 15 minutes (the default)', async () => {
    expect(await afterAge(15 * 60_000 - 1)).toEqual([journalFileName(1)]);
  });

  it('compacts a journal holding changes for 15 minutes (the default)', async () => {
    expect(await afterAge(15 * 60_000)).toEqual([journalFileName(2)]);
  });
});

describe('openJournalStore: upgrade and default log', FAST, () => {
  it('imports a v1 data dir, and writes warnings and notices to stderr when given no log', async () => {
    await cp(V1_FIXTURE, dir, { recursive: true });
    await writeFile(join(dir, LOCK_FILE), `${2 ** 22 + 1}\n`); // a stale lock: a warning
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (lines.push(String(chunk)), true));
    const store = await openJournalStore({ dir, clock });
    open.push(store);
    vi.restoreAllMocks();
    const ours = lines.filter((l) => l.startsWith('lark-bridge store:'));
    expect(ours[0]).toBe(`lark-bridge store: WARNING taking over the stale lock file ${join(dir, LOCK_FILE)} (pid ${2 ** 22 + 1} is not running)\n`);
    expect(ours.some((l) => /^lark-bridge store: imported the v1 store in .+\n$/.test(l))).toBe(true);
    expect(ours.every((l) => l.endsWith('\n'))).toBe(true);
    expect((await store.collection<Rec>('jobs').live()).length + (await store.collection<Rec>('runs').live()).length).toBeGreaterThan(0);
  });
});

describe('openStore', FAST, () => {
  it('opens the journal store on DATA_DIR when no database is given', async () => {
    const store = await openStore({ dir, clock, log: { warn: (m) => void warnings.push(m), info: () => undefined } });
    open.push(store);
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    expect(await readdir(dir)).toContain(SNAPSHOT_FILE);
  });

  it('goes to PostgreSQL when a database is given, and does not touch DATA_DIR', async () => {
    const err = await openStore({ dir, clock, database: { url: 'postgres://u:p@127.0.0.1:1/db', connectTimeoutMs: 2_000 }, log: { warn: () => undefined, info: () => undefined } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreRefused);
    expect((err as Error).message).toMatch(/^cannot use the database at .*127\.0\.0\.1:1/);
    expect(await readdir(root)).toEqual([]);
  });
});
