import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { JournalStore } from '../src/store/journal-store.js';
import { JOURNAL_MAGIC, journalFileName, journalGenerations } from '../src/store/journal.js';
import { openJournalStore, type JournalStoreOptions } from '../src/store/open-store.js';
import { SNAPSHOT_FILE } from '../src/store/snapshot-file.js';
import { StoreRefused } from '../src/store/store-errors.js';
import { FaultyFileOps } from './helpers/faulty-file-ops.js';
import { removeDir, tempDir, waitFor } from './helpers/test-app.js';
import { fakeClock } from './helpers/store-clock.js';

const DAY = 86_400_000;

interface Rec {
  id: string;
  n: number;
}

const dirs: string[] = [];
const stores: JournalStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.abandon();
  await Promise.all(dirs.splice(0).map(removeDir));
});
async function dir() {
  const d = await tempDir('lark-bridge-store-');
  dirs.push(d);
  return d;
}

/** Opens the journal store and collects its warnings. */
async function open(d: string, extra: Partial<JournalStoreOptions> = {}) {
  const warnings: string[] = [];
  const store = await openJournalStore({ dir: d, clock: fakeClock(), log: { warn: (m) => warnings.push(m), info: () => undefined }, ...extra });
  stores.push(store);
  return { store, warnings };
}

async function journals(d: string): Promise<string[]> {
  return journalGenerations(await readdir(d)).map((g) => join(d, journalFileName(g)));
}

describe('records brought back', () => {
  it('keeps a live record that is newer than its archived copy (brought back by a Retry)', async () => {
    const d = await dir();
    const clock = fakeClock();
    const { store } = await open(d, { clock });
    const runs = store.collection<Rec & { updatedAt: string }>('runs');
    await runs.archive({ id: 'r', n: 1, updatedAt: '2026-11-20T00:00:00.000Z' });
    await runs.put({ id: 'r', n: 2, updatedAt: '2026-11-20T00:00:01.000Z' }); // back to live, newer
    await store.close();
    const { store: reopened } = await open(d, { clock });
    const again = reopened.collection<Rec & { updatedAt: string }>('runs');
    expect((await again.live()).map((r) => r.n)).toEqual([2]);
    expect(await again.get('r')).toMatchObject({ n: 2 });
    await reopened.compact(); // and once the archived copy sits in a segment
    reopened.abandon();
    const { store: third } = await open(d, { clock });
    expect((await third.collection<Rec>('runs').live()).map((r) => r.n)).toEqual([2]);
  });
});

describe('journal: group commit', () => {
  it('writes the changes of one tick with one write and one fdatasync, and never resolves before them', async () => {
    const d = await dir();
    const ops = new FaultyFileOps();
    const { store } = await open(d, { fileOps: ops });
    const before = { ...ops.counts };
    const jobs = store.collection<Rec>('jobs');
    const keys = store.keys<string>('idempotency');
    let settled = 0;
    const writes = Array.from({ length: 100 }, (_, i) => [jobs.put({ id: `j${i}`, n: i }), keys.set(`k${i}`, 'v', Date.now() + DAY)]).flat();
    for (const w of writes) void w.then(() => settled++);
    let heldWrite!: () => void;
    ops.beforeWrite = () => new Promise<void>((r) => (heldWrite = r)); // hold the write back: nobody may be answered meanwhile
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(0);
    ops.beforeWrite = null;
    heldWrite();
    await Promise.all(writes);
    expect(ops.counts.writes - before.writes).toBe(1);
    expect(ops.counts.datasyncs - before.datasyncs).toBe(1);
    expect(store.journalStats.commits).toBe(1);
  });

  it('writes bytes in proportion to the change, however large the live set, the keys and the archive', async () => {
    const d = await dir();
    const ops = new FaultyFileOps();
    const { store } = await open(d, { fileOps: ops });
    const jobs = store.collection<Rec>('jobs');
    const measure = async () => {
      const before = ops.counts.bytes;
      await jobs.put({ id: 'probe', n: 1 });
      return ops.counts.bytes - before;
    };
    const small = await measure();
    const filler = Array.from({ length: 5000 }, (_, i) => [jobs.put({ id: `live${i}`, n: i }), jobs.archive({ id: `old${i}`, n: i }), store.keys('k').set(`k${i}`, i, Date.now() + DAY)]).flat();
    await Promise.all(filler);
    await store.compact();
    expect(await measure()).toBe(small);
  });
});

describe('journal: torn and corrupt tails', () => {
  it('starts from a journal cut at every byte offset of its last record, losing only that record', async () => {
    const d = await dir();
    const { store } = await open(d);
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 5; i++) await jobs.put({ id: `r${i}`, n: i });
    store.abandon();
    const [path] = await journals(d);
    const full = await readFile(path!);
    const lastStart = full.length - (full.length - JOURNAL_MAGIC.length) / 5; // the header, then 5 records of one size
    expect(Number.isInteger(lastStart)).toBe(true);
    for (let cut = lastStart; cut < full.length; cut++) {
      await writeFile(path!, full.subarray(0, cut));
      const { store: again, warnings } = await open(d);
      const ids = (await again.collection<Rec>('jobs').live()).map((r) => r.id).sort();
      expect(ids, `cut at ${cut}`).toEqual(['r0', 'r1', 'r2', 'r3']);
      if (cut > lastStart) expect(warnings).toEqual([expect.stringContaining(`journal ${path}: cut at byte ${lastStart} of ${cut}`)]);
      else expect(warnings).toEqual([]);
      expect((await stat(path!)).size).toBe(lastStart); // the torn bytes are gone: the next append follows good records
      await again.collection<Rec>('jobs').put({ id: 'next', n: 0 });
      again.abandon();
      const { store: third } = await open(d);
      expect(await third.collection<Rec>('jobs').get('next')).toEqual({ id: 'next', n: 0 });
      expect(await third.collection<Rec>('jobs').get('r3')).toEqual({ id: 'r3', n: 3 });
      third.abandon();
    }
  });

  it('cuts at a record that fails its checksum and says where', async () => {
    const d = await dir();
    const { store } = await open(d);
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 3; i++) await jobs.put({ id: `r${i}`, n: i });
    store.abandon();
    const [path] = await journals(d);
    const buf = await readFile(path!);
    const frameLen = (buf.length - 8) / 3;
    buf[8 + frameLen + 12]! ^= 0xff; // flip a byte inside the second record
    await writeFile(path!, buf);
    const { store: again, warnings } = await open(d);
    expect((await again.collection<Rec>('jobs').live()).map((r) => r.id)).toEqual(['r0']);
    expect(warnings).toEqual([expect.stringMatching(new RegExp(`${path}: cut at byte ${8 + frameLen} of ${buf.length} because a record fails its checksum`))]);
  });

  it('treats a journal without its header as cut at byte 0', async () => {
    const d = await dir();
    const { store } = await open(d);
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    store.abandon();
    const [path] = await journals(d);
    await writeFile(path!, 'garbage that is not a journal');
    const { store: again, warnings } = await open(d);
    expect(await again.collection<Rec>('jobs').live()).toEqual([]);
    expect(warnings[0]).toMatch(/cut at byte 0 .*does not start with a journal header/);
    await again.collection<Rec>('jobs').put({ id: 'b', n: 1 });
    expect((await readFile(path!)).subarray(0, 8)).toEqual(JOURNAL_MAGIC);
  });
});

describe('snapshot: refuses to start on damage, never starts empty', () => {
  const cases: Array<[string, (text: string) => string, RegExp]> = [
    ['truncated', (t) => t.slice(0, Math.floor(t.length / 2)), /not valid JSON/],
    ['garbage', () => '\u0000\u0001garbage', /not valid JSON/],
    ['empty', () => '', /the file is empty/],
    ['another document', () => '{"hello":"world"}', /not a lark-bridge snapshot/],
    ['records that are not records', (t) => t.replace(/"records":\{.*?\},"keys"/, '"records":{"jobs":[1,2]},"keys"'), /records of "jobs" are not a list of records/],
  ];
  for (const [name, damage, why] of cases) {
    it(`refuses a ${name} snapshot, naming the file and what to do`, async () => {
      const d = await dir();
      const { store } = await open(d);
      await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
      await store.compact();
      await store.close();
      const path = join(d, SNAPSHOT_FILE);
      await writeFile(path, damage(await readFile(path, 'utf8')));
      const err = await open(d).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreRefused);
      expect((err as Error).message).toMatch(why);
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).toMatch(/restore it from a backup, or move it aside/);
      expect((err as Error).message).not.toContain('\n');
      // The refusal leaves the files as they were, and frees the lock.
      expect(await readdir(d)).not.toContain('lark-bridge.pid');
    });
  }

  it('refuses when the snapshot is gone but the journal is there', async () => {
    const d = await dir();
    const { store } = await open(d);
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.close();
    await rm(join(d, SNAPSHOT_FILE));
    await expect(open(d)).rejects.toThrow(/snapshot\.json is missing but .*journal-00000001\.log is there: restore snapshot\.json from a backup/);
  });

  it('warns loudly and starts when snapshot and journal are gone but archive segments are there', async () => {
    const d = await dir();
    const { store } = await open(d);
    await store.collection<Rec>('jobs').archive({ id: 'old', n: 1 });
    await store.collection<Rec>('jobs').put({ id: 'live', n: 1 });
    await store.compact();
    await store.close();
    for (const f of [SNAPSHOT_FILE, ...(await readdir(d)).filter((n) => n.startsWith('journal-'))]) await rm(join(d, f));
    const { store: again, warnings } = await open(d);
    expect(warnings).toEqual([expect.stringMatching(/snapshot\.json and the journal are missing but archive segments are there: starting with NO live jobs/)]);
    expect(await again.collection<Rec>('jobs').get('old')).toEqual({ id: 'old', n: 1 });
    expect(await again.collection<Rec>('jobs').live()).toEqual([]);
  });

  it('warns when the journal the snapshot needs is gone', async () => {
    const d = await dir();
    const { store } = await open(d);
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await store.close();
    for (const p of await journals(d)) await rm(p);
    const { warnings } = await open(d);
    expect(warnings).toEqual([expect.stringMatching(/journal-00000001\.log is missing: the changes made after .* are lost/)]);
  });
});

describe('archive segments', () => {
  it('moves a damaged segment aside and starts with the others', async () => {
    const d = await dir();
    const clock = fakeClock();
    const { store } = await open(d, { clock, segment: { maxRecords: 3 } });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 7; i++) await jobs.archive({ id: `j${i}`, n: i });
    await store.compact();
    await store.close();
    const dayDir = join(d, 'archive', 'jobs', '2026-11-20');
    expect(await readdir(dayDir)).toEqual(['00000001.seg', '00000002.seg', '00000003.seg']);
    const victim = join(dayDir, '00000002.seg');
    const buf = await readFile(victim);
    buf[buf.length - 5]! ^= 0x55;
    await writeFile(victim, buf);
    const { store: again, warnings } = await open(d, { clock });
    expect(warnings).toEqual([expect.stringContaining(`archive segment ${victim} is damaged (at byte`)]);
    expect(warnings[0]).toContain(`moved aside to ${victim}.damaged`);
    expect((await readdir(dayDir)).sort()).toEqual(['00000001.seg', '00000002.seg.damaged', '00000003.seg']);
    const c = again.collection<Rec>('jobs');
    expect(await c.get('j0')).toEqual({ id: 'j0', n: 0 });
    expect(await c.get('j6')).toEqual({ id: 'j6', n: 6 });
    expect(await c.get('j4')).toBeUndefined();
    expect(await c.archivedCount()).toBe(4);
    await c.archive({ id: 'j7', n: 7 });
    await again.compact();
    expect(await c.get('j7')).toEqual({ id: 'j7', n: 7 });
  });

  it('cuts segment bytes a compaction wrote but never committed, and takes the records from the journal without duplicates', async () => {
    const d = await dir();
    const ops = new FaultyFileOps();
    const { store } = await open(d, { fileOps: ops, segment: { maxRecords: 3 } });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 5; i++) await jobs.archive({ id: `a${i}`, n: i });
    await store.compact(); // segments 1 (3 records) and 2 (2)
    for (let i = 0; i < 5; i++) await jobs.archive({ id: `b${i}`, n: i });
    ops.fault = { at: 'rename', code: 'EIO', file: /^snapshot\.json$/ }; // the snapshot never lands
    await expect(store.compact()).rejects.toThrow(/EIO/); // after appending to segment 2 and writing 3 and 4
    store.abandon();
    const dayDir = join(d, 'archive', 'jobs', '2026-11-20');
    const sizes = async () => Object.fromEntries(await Promise.all((await readdir(dayDir)).map(async (f) => [f, (await stat(join(dayDir, f))).size])));
    const written = await sizes();
    expect(Object.keys(written)).toEqual(['00000001.seg', '00000002.seg', '00000003.seg', '00000004.seg']);
    const { store: again } = await open(d, { segment: { maxRecords: 3 } });
    const c = again.collection<Rec>('jobs');
    expect(await c.archivedCount()).toBe(10);
    expect(await c.get('b4')).toEqual({ id: 'b4', n: 4 });
    const cut = await sizes();
    expect(Object.keys(cut)).toEqual(['00000001.seg', '00000002.seg']); // files past the committed point are gone
    expect(cut['00000002.seg']).toBeLessThan(written['00000002.seg']); // and the appended part is cut
    await again.compact();
    expect(await sizes()).toEqual(written); // written once more, not twice
    again.abandon();
    const { store: third } = await open(d, { segment: { maxRecords: 3 } });
    expect(await third.collection<Rec>('jobs').archivedCount()).toBe(10);
    expect(await third.collection<Rec>('jobs').get('b2')).toEqual({ id: 'b2', n: 2 });
  });

  it('reads one archived record from its segment after a restart, and drops whole segments by retention', async () => {
    const d = await dir();
    const clock = fakeClock();
    const { store } = await open(d, { clock, segment: { maxRecords: 2 }, retention: { jobs: { maxAgeMs: 7 * DAY, maxCount: 4 } } });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 4; i++) await jobs.archive({ id: `old${i}`, n: i });
    await store.compact();
    clock.advance(8 * DAY);
    for (let i = 0; i < 2; i++) await jobs.archive({ id: `new${i}`, n: i });
    await store.compact();
    expect((await store.prune(clock.now())).archivedRemoved).toBe(4);
    expect(await readdir(join(d, 'archive', 'jobs'))).toEqual(['2026-11-28']); // the emptied day is gone
    for (let i = 0; i < 6; i++) await jobs.archive({ id: `more${i}`, n: i });
    await store.compact();
    expect(await jobs.archivedCount()).toBe(8);
    await store.prune(clock.now());
    expect(await jobs.archivedCount()).toBe(4);
    expect(await jobs.get('new0')).toBeUndefined();
    await store.close();
    const { store: again } = await open(d, { clock });
    expect(await again.collection<Rec>('jobs').archivedCount()).toBe(4);
    expect(await again.collection<Rec>('jobs').get('more5')).toEqual({ id: 'more5', n: 5 });
  });
});

describe('compaction', () => {
  it('starts a new journal, writes the snapshot and deletes the old journal; the snapshot holds the live set, not the archive', async () => {
    const d = await dir();
    const clock = fakeClock();
    const { store } = await open(d, { clock });
    const jobs = store.collection<Rec>('jobs');
    await jobs.put({ id: 'live', n: 1 });
    await jobs.archive({ id: 'done', n: 2 });
    await store.keys<number>('lark-events').set('expired', 1, clock.now() + 10);
    await store.keys<number>('lark-events').set('fresh', 1, clock.now() + DAY);
    clock.advance(20);
    await store.compact();
    expect((await journals(d)).map((p) => p.slice(d.length + 1))).toEqual(['journal-00000002.log']);
    const snapshot = JSON.parse(await readFile(join(d, SNAPSHOT_FILE), 'utf8'));
    expect(snapshot).toMatchObject({ format: 'lark-bridge-store', version: 2, journal: 2, records: { jobs: [{ id: 'live', n: 1 }] }, keys: { 'lark-events': [['fresh', 1, clock.now() - 20 + DAY]] } });
    expect(JSON.stringify(snapshot)).not.toContain('done');
    expect(await store.keys('lark-events').size()).toBe(1); // the expired key left memory too
  });

  it('runs by itself once the journal passes its size, off the request path', async () => {
    const d = await dir();
    const { store } = await open(d, { compactAtBytes: 4096 });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 300; i++) await jobs.put({ id: `j${i}`, n: i });
    await new Promise((r) => setTimeout(r, 50));
    await store.flush();
    const gens = journalGenerations(await readdir(d));
    expect(gens[0]).toBeGreaterThan(1);
    expect(JSON.parse(await readFile(join(d, SNAPSHOT_FILE), 'utf8')).journal).toBeGreaterThan(1);
  });

  it('waits for a journal twice the size of the snapshot, so that its cost per change stays bounded', async () => {
    const d = await dir();
    const { store } = await open(d, { compactAtBytes: 1024 });
    const keys = store.keys<number>('lark-events');
    await Promise.all(Array.from({ length: 500 }, (_, i) => keys.set(`event-${i}`, i, Date.now() + DAY)));
    await store.compact();
    const snapshotBytes = (await stat(join(d, SNAPSHOT_FILE))).size;
    const gen = () => readdir(d).then((names) => journalGenerations(names)[0]!);
    const startGen = await gen();
    const jobs = store.collection<Rec>('jobs');
    const base = store.journalStats.bytes;
    let written = 0;
    for (let i = 0; written < 1.8 * snapshotBytes; i++) {
      await jobs.put({ id: `j${i}`, n: i });
      written = store.journalStats.bytes - base;
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(await gen()).toBe(startGen); // past compactAtBytes, short of twice the snapshot
    for (let i = 0; written < 2.2 * snapshotBytes + 1024; i++) {
      await jobs.put({ id: `more${i}`, n: i });
      written = store.journalStats.bytes - base;
    }
    await waitFor(async () => (await gen()) > startGen);
  });

  it('runs by itself once the journal has held changes longer than its age limit', async () => {
    const d = await dir();
    const clock = fakeClock();
    const { store } = await open(d, { clock, compactEveryMs: 20 });
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    await new Promise((r) => setTimeout(r, 60));
    expect(journalGenerations(await readdir(d))).toEqual([1]); // the store's clock has not moved: not due
    clock.advance(21);
    await waitFor(async () => journalGenerations(await readdir(d))[0]! > 1);
    expect(JSON.parse(await readFile(join(d, SNAPSHOT_FILE), 'utf8')).records.jobs).toEqual([{ id: 'a', n: 1 }]);
  });

  it('does not retry a failing compaction on every commit, and retries it a minute later', async () => {
    const d = await dir();
    const clock = fakeClock();
    const ops = new FaultyFileOps();
    const { store, warnings } = await open(d, { clock, fileOps: ops, compactAtBytes: 1024 });
    let attempts = 0;
    ops.beforeWrite = (path) => {
      if (path.endsWith('.snapshot.json.tmp')) attempts++;
    };
    ops.fault = { at: 'write', code: 'ENOSPC', file: /snapshot/ };
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 200; i++) await jobs.put({ id: `j${i}`, n: i }); // well past 1 KiB, many commits
    await waitFor(() => warnings.length > 0);
    for (let i = 0; i < 50; i++) await jobs.put({ id: `k${i}`, n: i });
    await new Promise((r) => setTimeout(r, 20));
    expect(attempts).toBe(1);
    expect(warnings).toEqual([expect.stringMatching(/compaction failed, the journal keeps every change; retrying in a minute: ENOSPC/)]);
    ops.fault = null;
    clock.advance(60_001);
    await jobs.put({ id: 'later', n: 1 });
    await waitFor(async () => journalGenerations(await readdir(d))[0]! > 1);
    expect(attempts).toBe(2);
  });

  it('does not hold writes back while the snapshot is being written', async () => {
    const d = await dir();
    const ops = new FaultyFileOps();
    const { store } = await open(d, { fileOps: ops });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 50; i++) await jobs.put({ id: `j${i}`, n: i });
    let release!: () => void;
    const snapshotHeld = new Promise<void>((r) => (release = r));
    let holding = false;
    ops.beforeWrite = (path) => {
      if (!path.endsWith('.snapshot.json.tmp')) return;
      holding = true;
      return snapshotHeld;
    };
    const compaction = store.compact();
    while (!holding) await new Promise((r) => setTimeout(r, 5));
    await jobs.put({ id: 'during', n: 1 }); // resolves while the snapshot write is held
    await store.keys('k').claim('during', 1, Date.now() + DAY);
    release();
    await compaction;
    store.abandon();
    const { store: again } = await open(d);
    expect(await again.collection<Rec>('jobs').get('during')).toEqual({ id: 'during', n: 1 });
  });

  it('leaves everything readable when a compaction fails at any step', async () => {
    for (const fault of [
      { at: 'datasync' as const, code: 'EIO' as const, file: /\.seg$/ },
      { at: 'write' as const, code: 'ENOSPC' as const, file: /snapshot/ },
      { at: 'rename' as const, code: 'EIO' as const, file: /^snapshot\.json$/ },
      { at: 'write' as const, code: 'ENOSPC' as const, file: /^journal-/ },
    ]) {
      const d = await dir();
      const ops = new FaultyFileOps();
      const { store } = await open(d, { fileOps: ops });
      const jobs = store.collection<Rec>('jobs');
      for (let i = 0; i < 20; i++) await (i % 2 ? jobs.archive({ id: `j${i}`, n: i }) : jobs.put({ id: `j${i}`, n: i }));
      ops.fault = fault;
      await expect(store.compact(), JSON.stringify(fault)).rejects.toThrow();
      ops.fault = null;
      await jobs.put({ id: 'after', n: 1 });
      store.abandon();
      const { store: again } = await open(d);
      const c = again.collection<Rec>('jobs');
      expect((await c.live()).length, JSON.stringify(fault)).toBe(11);
      expect(await c.archivedCount()).toBe(10);
      expect(await c.get('j19')).toEqual({ id: 'j19', n: 19 });
      again.abandon();
    }
  });
});

describe('failing disk', () => {
  for (const fault of [
    { at: 'datasync' as const, code: 'EIO' as const },
    { at: 'write' as const, code: 'ENOSPC' as const },
  ]) {
    it(`rejects the callers of a commit whose ${fault.at} fails (${fault.code}), reports not writable, and recovers by itself`, async () => {
      const d = await dir();
      const ops = new FaultyFileOps();
      const { store } = await open(d, { fileOps: ops });
      const jobs = store.collection<Rec>('jobs');
      const keys = store.keys<number>('lark-events');
      await jobs.put({ id: 'before', n: 1 });
      ops.fault = fault;
      const results = await Promise.allSettled([jobs.put({ id: 'lost', n: 1 }), keys.claim('ev', 1, Date.now() + DAY)]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((results[0] as PromiseRejectedResult).reason)).toContain(fault.code);
      expect(await keys.get('ev')).toBeUndefined(); // the failed claim was given back
      expect(await store.isWritable()).toBe(false);
      ops.fault = null;
      expect(await store.isWritable()).toBe(true);
      expect(await keys.claim('ev', 2, Date.now() + DAY)).toBe(true);
      await jobs.put({ id: 'after', n: 1 });
      store.abandon();
      const { store: again } = await open(d);
      const c = again.collection<Rec>('jobs');
      expect(await c.get('before')).toEqual({ id: 'before', n: 1 });
      expect(await c.get('after')).toEqual({ id: 'after', n: 1 });
      expect(await c.get('lost')).toBeUndefined();
      expect(await again.keys<number>('lark-events').get('ev')).toBe(2);
    });
  }

  it('refuses writes once the data dir is deleted under it (an unlinked journal would lose them)', async () => {
    const d = await dir();
    const { store } = await open(d);
    expect(await store.isWritable()).toBe(true);
    await removeDir(d);
    await writeFile(d, 'not a directory');
    await expect(store.collection<Rec>('jobs').put({ id: 'z', n: 0 })).rejects.toThrow(/deleted while open|ENOTDIR/);
    expect(await store.isWritable()).toBe(false);
    await rm(d);
  });

  it('refuses to start on a DATA_DIR that is a file', async () => {
    const d = await dir();
    const file = join(d, 'a-file');
    await writeFile(file, 'x');
    await expect(open(file)).rejects.toThrow(`DATA_DIR ${file} is not a directory`);
  });
});
