import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { BatchedWriter } from '../src/store/batched-writer.js';
import { openJsonFileStore } from '../src/store/json-file-store.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const DAY = 86_400_000;

function fakeClock(start = Date.parse('2026-11-20T10:00:00Z')): Clock & { advance(ms: number): void } {
  let t = start;
  return { now: () => t, sleep: async () => undefined, advance: (ms) => (t += ms) };
}

interface Rec {
  id: string;
  n: number;
}

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map(removeDir));
});
async function dir() {
  const d = await tempDir('lark-bridge-store-');
  dirs.push(d);
  return d;
}

describe('BatchedWriter', () => {
  it('shares one write among the commits of one tick, and one more for commits made while writing', async () => {
    let writes = 0;
    let release!: () => void;
    const writer = new BatchedWriter(async () => {
      writes++;
      if (writes === 1) await new Promise<void>((r) => (release = r));
    });
    const first = Array.from({ length: 100 }, () => writer.commit());
    await new Promise((r) => setImmediate(r));
    expect(writes).toBe(1);
    const second = Array.from({ length: 50 }, () => writer.commit()); // while the first write is in flight
    release();
    await Promise.all([...first, ...second]);
    expect(writes).toBe(2);
  });

  it('rejects the callers of a failed write and succeeds again afterwards', async () => {
    let fail = true;
    const writer = new BatchedWriter(async () => {
      if (fail) throw new Error('disk full');
    });
    await expect(writer.commit()).rejects.toThrow('disk full');
    expect(writer.lastError).toBeTruthy();
    fail = false;
    await writer.commit();
    expect(writer.lastError).toBeNull();
  });
});

describe('json-file store', () => {
  it('has a put on disk when its promise resolves, and reads it back after reopening', async () => {
    const d = await dir();
    const store = await openJsonFileStore({ dir: d, clock: fakeClock() });
    await store.collection<Rec>('jobs').put({ id: 'a', n: 1 });
    const onDisk = JSON.parse(await readFile(join(d, 'live.json'), 'utf8'));
    expect(onDisk.records.jobs.a).toEqual({ id: 'a', n: 1 });
    const reopened = await openJsonFileStore({ dir: d, clock: fakeClock() });
    expect(await reopened.collection<Rec>('jobs').get('a')).toEqual({ id: 'a', n: 1 });
  });

  it('moves archived records out of the live document into dated segments', async () => {
    const d = await dir();
    const clock = fakeClock();
    const store = await openJsonFileStore({ dir: d, clock, segment: { maxRecords: 3 } });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 7; i++) {
      await jobs.put({ id: `j${i}`, n: i });
      await jobs.archive({ id: `j${i}`, n: i });
    }
    await jobs.put({ id: 'live', n: 99 });
    const live = JSON.parse(await readFile(join(d, 'live.json'), 'utf8'));
    expect(Object.keys(live.records.jobs)).toEqual(['live']); // the live doc holds only the live set
    const segments = await readdir(join(d, 'archive', 'jobs', '2026-11-20'));
    expect(segments).toEqual(['00000001.json', '00000002.json', '00000003.json']); // 3 + 3 + 1
    expect(jobs.archivedCount()).toBe(7);

    const reopened = await openJsonFileStore({ dir: d, clock });
    const again = reopened.collection<Rec>('jobs');
    expect(again.archivedCount()).toBe(7);
    expect(await again.get('j0')).toEqual({ id: 'j0', n: 0 });
    expect(await again.get('j6')).toEqual({ id: 'j6', n: 6 });
    expect((await again.live()).map((r) => r.id)).toEqual(['live']);
  });

  it('heals a record left in both live and archive by a crash between the two writes', async () => {
    const d = await dir();
    const clock = fakeClock();
    const store = await openJsonFileStore({ dir: d, clock });
    const jobs = store.collection<Rec>('jobs');
    await jobs.put({ id: 'x', n: 1 });
    await jobs.archive({ id: 'x', n: 2 });
    await jobs.put({ id: 'x', n: 1 }); // simulate the live copy surviving
    const reopened = await openJsonFileStore({ dir: d, clock });
    expect(await reopened.collection<Rec>('jobs').live()).toEqual([]);
    expect(await reopened.collection<Rec>('jobs').get('x')).toEqual({ id: 'x', n: 2 });
  });

  it('keeps a live record that is newer than its archived copy (brought back by a Retry)', async () => {
    const d = await dir();
    const clock = fakeClock();
    const store = await openJsonFileStore({ dir: d, clock });
    const runs = store.collection<Rec & { updatedAt: string }>('runs');
    await runs.archive({ id: 'r', n: 1, updatedAt: '2026-11-20T00:00:00.000Z' });
    await runs.put({ id: 'r', n: 2, updatedAt: '2026-11-20T00:00:01.000Z' }); // back to live, newer
    await store.close();
    const reopened = (await openJsonFileStore({ dir: d, clock })).collection<Rec & { updatedAt: string }>('runs');
    expect((await reopened.live()).map((r) => r.n)).toEqual([2]);
    expect(await reopened.get('r')).toMatchObject({ n: 2 });
  });

  it('answers the newest copy of a record archived twice', async () => {
    const d = await dir();
    const store = await openJsonFileStore({ dir: d, clock: fakeClock() });
    const runs = store.collection<Rec>('runs');
    await runs.archive({ id: 'r', n: 1 });
    await runs.archive({ id: 'r', n: 2 });
    expect(await runs.get('r')).toEqual({ id: 'r', n: 2 });
    const reopened = (await openJsonFileStore({ dir: d, clock: fakeClock() })).collection<Rec>('runs');
    expect(await reopened.get('r')).toEqual({ id: 'r', n: 2 });
  });

  it('treats prototype names as plain ids and keys', async () => {
    const d = await dir();
    const store = await openJsonFileStore({ dir: d, clock: fakeClock() });
    const jobs = store.collection<Rec>('jobs');
    for (const id of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) expect(await jobs.get(id)).toBeUndefined();
    await jobs.put({ id: '__proto__', n: 7 });
    expect(await jobs.get('__proto__')).toEqual({ id: '__proto__', n: 7 });
    expect(await jobs.live()).toEqual([{ id: '__proto__', n: 7 }]);
    const keys = store.keys<string>('k');
    expect(await keys.get('constructor')).toBeUndefined();
    expect(await keys.claim('__proto__', 'v', Date.now() + 1000)).toBe(true);
    expect(await keys.get('__proto__')).toBe('v');
    await store.close();
    const reopened = await openJsonFileStore({ dir: d, clock: fakeClock() });
    expect(await reopened.collection<Rec>('jobs').get('__proto__')).toEqual({ id: '__proto__', n: 7 });
    expect(await reopened.keys<string>('k').get('__proto__')).toBe('v');
  });

  it('claims a key once: of concurrent claims exactly one wins, and an expired key can be claimed again', async () => {
    const d = await dir();
    const clock = fakeClock();
    const store = await openJsonFileStore({ dir: d, clock });
    const keys = store.keys<number>('events');
    const results = await Promise.all([1, 2, 3, 4].map((n) => keys.claim('ev-1', n, clock.now() + 1000)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await keys.get('ev-1')).toBe(results.indexOf(true) + 1);
    clock.advance(1001);
    expect(await keys.claim('ev-1', 9, clock.now() + 1000)).toBe(true);
  });

  it('gives a failed claim back, so a retry after the disk recovers can take it', async () => {
    const d = await dir();
    const store = await openJsonFileStore({ dir: d, clock: fakeClock() });
    const keys = store.keys<number>('events');
    await removeDir(d);
    await writeFile(d, 'not a directory');
    await expect(keys.claim('ev-2', 1, Date.now() + 1000)).rejects.toThrow();
    expect(await keys.get('ev-2')).toBeUndefined();
  });

  it('prunes archived records by age and by count, segment by segment', async () => {
    const d = await dir();
    const clock = fakeClock();
    const store = await openJsonFileStore({
      dir: d,
      clock,
      segment: { maxRecords: 2 },
      retention: { jobs: { maxAgeMs: 7 * DAY, maxCount: 4 } },
    });
    const jobs = store.collection<Rec>('jobs');
    for (let i = 0; i < 4; i++) await jobs.archive({ id: `old${i}`, n: i });
    clock.advance(8 * DAY);
    for (let i = 0; i < 2; i++) await jobs.archive({ id: `new${i}`, n: i });
    const byAge = await store.prune(clock.now());
    expect(byAge.archivedRemoved).toBe(4);
    expect(await jobs.get('old0')).toBeUndefined();
    expect(await jobs.get('new1')).toEqual({ id: 'new1', n: 1 });

    for (let i = 0; i < 6; i++) await jobs.archive({ id: `more${i}`, n: i });
    expect(jobs.archivedCount()).toBe(8);
    await store.prune(clock.now());
    expect(jobs.archivedCount()).toBe(4); // whole oldest segments dropped down to maxCount
    expect(await jobs.get('new0')).toBeUndefined();
    expect(await jobs.get('more5')).toBeTruthy();
    const reopened = await openJsonFileStore({ dir: d, clock });
    expect(reopened.collection<Rec>('jobs').archivedCount()).toBe(4);
  });

  it('expires keys', async () => {
    const d = await dir();
    const clock = fakeClock();
    const store = await openJsonFileStore({ dir: d, clock });
    const keys = store.keys<string>('idempotency');
    await keys.set('k', 'v', clock.now() + 1000);
    expect(await keys.get('k')).toBe('v');
    clock.advance(1001);
    expect(await keys.get('k')).toBeUndefined();
    expect((await store.prune(clock.now())).keysExpired).toBe(1);
    expect(keys.size()).toBe(0);
  });

  it('rejects writes and reports not writable when the data dir is gone (a file in its place)', async () => {
    const d = await dir();
    const store = await openJsonFileStore({ dir: d, clock: fakeClock() });
    expect(await store.isWritable()).toBe(true);
    await removeDir(d);
    await writeFile(d, 'not a directory');
    await expect(store.collection<Rec>('jobs').put({ id: 'z', n: 0 })).rejects.toThrow();
    expect(await store.isWritable()).toBe(false);
  });
});

describe('json-file store under concurrent first use', () => {
  it('archives many records of a new collection in the same tick into one set of segments', async () => {
    const d = await dir();
    const store = await openJsonFileStore({ dir: d, clock: fakeClock(), segment: { maxRecords: 50 } });
    const jobs = store.collection<Rec>('fresh');
    await Promise.all(Array.from({ length: 120 }, (_, i) => jobs.archive({ id: `r${i}`, n: i })));
    expect(jobs.archivedCount()).toBe(120);
    const reopened = await openJsonFileStore({ dir: d, clock: fakeClock() });
    expect(reopened.collection<Rec>('fresh').archivedCount()).toBe(120);
  });
});
