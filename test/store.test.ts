import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { BatchedWriter } from '../src/store/batched-writer.js';
import { openJsonFileStore } from '../src/store/json-file-store.js';
import { createMemoryStore } from '../src/store/memory-store.js';
import type { Store } from '../src/store/store.js';
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
    expect(again.live().map((r) => r.id)).toEqual(['live']);
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
    expect(reopened.collection<Rec>('jobs').live()).toEqual([]);
    expect(await reopened.collection<Rec>('jobs').get('x')).toEqual({ id: 'x', n: 2 });
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
    expect(keys.get('k')).toBe('v');
    clock.advance(1001);
    expect(keys.get('k')).toBeUndefined();
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

describe('memory store', () => {
  it('behaves like the file store for the operations the app uses', async () => {
    const clock = fakeClock();
    const store: Store = createMemoryStore(clock, { maxAgeMs: DAY, maxCount: 10 });
    const jobs = store.collection<Rec>('jobs');
    await jobs.put({ id: 'a', n: 1 });
    expect(jobs.live()).toHaveLength(1);
    await jobs.archive({ id: 'a', n: 2 });
    expect(jobs.live()).toHaveLength(0);
    expect(await jobs.get('a')).toEqual({ id: 'a', n: 2 });
    clock.advance(2 * DAY);
    expect((await store.prune(clock.now())).archivedRemoved).toBe(1);
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
