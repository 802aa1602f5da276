import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SNAPSHOT_FILE, snapshotDb, type SnapshotDoc } from '../src/store/snapshot-file.js';
import { StoreRefused } from '../src/store/store-errors.js';
import { errno, RecordingFileOps } from './helpers/recording-file-ops.js';

/** snapshot.json: read refuses damage (naming the file), write is temp file + fsync + rename + directory fsync. */
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lark-bridge-snapshot-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const snapshotPath = () => join(dir, SNAPSHOT_FILE);
const TMP = `.${SNAPSHOT_FILE}.tmp`;

function doc(over: Partial<SnapshotDoc> = {}): SnapshotDoc {
  return {
    format: 'lark-bridge-store',
    version: 2,
    journal: 3,
    writtenAt: '2026-11-20T10:00:00.000Z',
    archive: { jobs: { seq: 2, bytes: 512 } },
    records: { jobs: [{ id: 'j1', updatedAt: '2026-11-20T09:00:00.000Z' }, { id: 'j2' }], runs: [], 'approval-runs': [{ id: '运行-1' }] },
    keys: { idempotency: [['k1', { job: 'j1' }, 1_800_000_000_000], ['k2', null, 1_800_000_000_001]], empty: [] },
    ...over,
  };
}

async function readDoc(ops = new RecordingFileOps()) {
  const db = snapshotDb(ops, dir);
  await db.read();
  return db.data;
}

async function refusal(text: string): Promise<string> {
  await writeFile(snapshotPath(), text);
  const err = await readDoc().catch((e: unknown) => e);
  expect(err, text).toBeInstanceOf(StoreRefused);
  return (err as Error).message;
}

describe('snapshot file: reading', () => {
  it('reads nothing (null) when there is no snapshot yet', async () => {
    expect(await readDoc()).toBeNull();
  });

  it('reads back what it wrote, Unicode included', async () => {
    const db = snapshotDb(new RecordingFileOps(), dir);
    db.data = doc();
    await db.write();
    expect(await readDoc()).toEqual(doc());
  });

  it('reads a snapshot with no collections, no key spaces and no archive', async () => {
    const empty = doc({ archive: {}, records: {}, keys: {} });
    await writeFile(snapshotPath(), JSON.stringify(empty));
    expect(await readDoc()).toEqual(empty);
  });

  it('refuses an empty file and a file that is not JSON, naming the file and what to do, on one line', async () => {
    const empty = await refusal('');
    expect(empty).toBe(
      `${snapshotPath()} is damaged (the file is empty): restore it from a backup, or move it aside to start without the live jobs, runs and keys it holds (archived history is kept)`,
    );
    const cut = await refusal(JSON.stringify(doc()).slice(0, 40));
    expect(cut).toMatch(new RegExp(`^${snapshotPath()} is damaged \\(not valid JSON: .+\\): restore it from a backup`));
    expect(cut).toContain('JSON');
    expect(cut).not.toContain('\n');
  });

  const damaged: Array<[string, unknown, string]> = [
    ['null', null, 'not a lark-bridge snapshot'],
    ['a string', 'lark-bridge-store', 'not a lark-bridge snapshot'],
    ['another document', { hello: 'world' }, 'not a lark-bridge snapshot'],
    ['another format', { ...doc(), format: 'lark-bridge' }, 'not a lark-bridge snapshot'],
    ['version 1', { ...doc(), version: 1 }, 'snapshot version 1 is not one this version reads'],
    ['version 3', { ...doc(), version: 3 }, 'snapshot version 3 is not one this version reads'],
    ['no version', { ...doc(), version: undefined }, 'snapshot version undefined is not one this version reads'],
    ['a version string', { ...doc(), version: '2' }, 'snapshot version 2 is not one this version reads'],
    ['no journal', { ...doc(), journal: undefined }, 'fields are missing'],
    ['a fractional journal', { ...doc(), journal: 1.5 }, 'fields are missing'],
    ['a journal string', { ...doc(), journal: '3' }, 'fields are missing'],
    ['no archive', { ...doc(), archive: undefined }, 'fields are missing'],
    ['a null archive', { ...doc(), archive: null }, 'fields are missing'],
    ['no records', { ...doc(), records: undefined }, 'fields are missing'],
    ['null records', { ...doc(), records: null }, 'fields are missing'],
    ['records as a string', { ...doc(), records: 'x' }, 'fields are missing'],
    ['no keys', { ...doc(), keys: undefined }, 'fields are missing'],
    ['null keys', { ...doc(), keys: null }, 'fields are missing'],
    ['a collection that is not a list', { ...doc(), records: { jobs: { id: 'j1' } } }, 'records of "jobs" are not a list of records'],
    ['a record that is a number', { ...doc(), records: { jobs: [{ id: 'ok' }, 1] } }, 'records of "jobs" are not a list of records'],
    ['a record that is null', { ...doc(), records: { runs: [null] } }, 'records of "runs" are not a list of records'],
    ['a record without an id', { ...doc(), records: { jobs: [{ id: 'ok' }, { name: 'x' }] } }, 'records of "jobs" are not a list of records'],
    ['a record with a number id', { ...doc(), records: { jobs: [{ id: 7 }] } }, 'records of "jobs" are not a list of records'],
    ['a key space that is not a list', { ...doc(), keys: { idempotency: {} } }, 'keys of "idempotency" are not a list of keys'],
    ['a key that is not a tuple', { ...doc(), keys: { idempotency: [['k', 1, 2], 'k2'] } }, 'keys of "idempotency" are not a list of keys'],
    ['a key with a number name', { ...doc(), keys: { idempotency: [[1, 'v', 2]] } }, 'keys of "idempotency" are not a list of keys'],
    ['a key without an expiry', { ...doc(), keys: { seen: [['k', 'v']] } }, 'keys of "seen" are not a list of keys'],
    ['a key with a string expiry', { ...doc(), keys: { seen: [['k', 'v', '1']] } }, 'keys of "seen" are not a list of keys'],
    ['a null archive position', { ...doc(), archive: { jobs: null } }, 'archive positions are not numbers'],
    ['an archive position that is a number', { ...doc(), archive: { jobs: 3 } }, 'archive positions are not numbers'],
    ['an archive position without seq', { ...doc(), archive: { jobs: { bytes: 1 } } }, 'archive positions are not numbers'],
    ['an archive position without bytes', { ...doc(), archive: { jobs: { seq: 1 } } }, 'archive positions are not numbers'],
    ['a fractional archive position', { ...doc(), archive: { jobs: { seq: 1, bytes: 0.5 } } }, 'archive positions are not numbers'],
  ];
  for (const [name, value, why] of damaged) {
    it(`refuses ${name}, naming the file and why`, async () => {
      const message = await refusal(JSON.stringify(value));
      expect(message).toBe(
        `${snapshotPath()} is damaged (${why}): restore it from a backup, or move it aside to start without the live jobs, runs and keys it holds (archived history is kept)`,
      );
    });
  }

  it('takes a value of null in a key (a key set without a value)', async () => {
    await writeFile(snapshotPath(), JSON.stringify(doc({ keys: { k: [['a', null, 5]] } })));
    expect((await readDoc())?.keys).toEqual({ k: [['a', null, 5]] });
  });
});

describe('snapshot file: writing', () => {
  it('writes the document as JSON, one line, through a temp file: write, fsync, close, rename, directory fsync', async () => {
    const ops = new RecordingFileOps();
    const db = snapshotDb(ops, dir);
    db.data = doc();
    await db.write();
    const text = await readFile(snapshotPath(), 'utf8');
    expect(text).toBe(`${JSON.stringify(doc())}\n`);
    expect(ops.log).toEqual([
      `remove ${TMP}`,
      `create ${TMP}`,
      `write ${TMP} @0 ${Buffer.byteLength(text)}`,
      `sync ${TMP}`,
      `close ${TMP}`,
      `rename ${TMP} ${SNAPSHOT_FILE}`,
      `syncDir ${basename(dir)}`,
    ]);
    expect(await readdir(dir)).toEqual([SNAPSHOT_FILE]);
  });

  it('writes empty collections and key spaces as empty lists, and none at all as empty objects', async () => {
    for (const d of [doc({ records: { a: [], b: [{ id: 'x' }] }, keys: { s: [] } }), doc({ archive: {}, records: {}, keys: {} })]) {
      const db = snapshotDb(new RecordingFileOps(), dir);
      db.data = d;
      await db.write();
      expect(await readFile(snapshotPath(), 'utf8')).toBe(`${JSON.stringify(d)}\n`);
    }
  });

  it('writes nothing for no document', async () => {
    const ops = new RecordingFileOps();
    const db = snapshotDb(ops, dir);
    db.data = null;
    await db.write();
    expect(ops.log).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('writes a large document in chunks of about 256 KiB, one after the other, and reads it back whole', async () => {
    const ops = new RecordingFileOps();
    const db = snapshotDb(ops, dir);
    const pad = 'é'.repeat(500); // 2 bytes a character: chunks count characters, positions count bytes
    const big = doc({ records: { jobs: Array.from({ length: 1200 }, (_, i) => ({ id: `job-${i}`, pad })) as SnapshotDoc['records'][string] } });
    db.data = big;
    await db.write();
    const writes = ops.log.filter((l) => l.startsWith('write '));
    const sizes = writes.map((l) => Number(l.split(' ')[3]));
    const positions = writes.map((l) => Number(l.split('@')[1]!.split(' ')[0]));
    expect(writes.length).toBeGreaterThanOrEqual(3);
    expect(writes.length).toBeLessThanOrEqual(4);
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(256 * 1024); // at least 256 Ki characters
      expect(s).toBeLessThan(2 * (256 * 1024 + 1100)); // and at most one record more
    }
    expect(positions).toEqual(sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0)));
    const text = await readFile(snapshotPath(), 'utf8');
    expect(text).toBe(`${JSON.stringify(big)}\n`);
    expect(Buffer.byteLength(text)).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(await readDoc()).toEqual(big);
  });

  it('writes a chunk as soon as it holds 256 Ki characters', async () => {
    const base = doc({ archive: {}, records: {}, keys: {} });
    const head = JSON.stringify(base).indexOf('"records":{') + '"records":{'.length;
    const listStart = '"jobs":['.length;
    const pad = 256 * 1024 - head - listStart - JSON.stringify({ id: 'a', pad: '' }).length;
    const exact = doc({ archive: {}, records: { jobs: [{ id: 'a', pad: 'x'.repeat(pad) } as SnapshotDoc['records'][string][number]] }, keys: {} });
    const ops = new RecordingFileOps();
    const db = snapshotDb(ops, dir);
    db.data = exact;
    await db.write();
    expect(ops.log.filter((l) => l.startsWith('write '))).toEqual([`write ${TMP} @0 ${256 * 1024}`, `write ${TMP} @${256 * 1024} ${']},"keys":{}}\n'.length}`]);
    expect(await readDoc()).toEqual(exact);
  });

  it('replaces a temp file left by a write cut short', async () => {
    await writeFile(join(dir, TMP), 'half a snapshot from before a crash');
    const db = snapshotDb(new RecordingFileOps(), dir);
    db.data = doc();
    await db.write();
    expect(await readDoc()).toEqual(doc());
    expect(await readdir(dir)).toEqual([SNAPSHOT_FILE]);
  });

  it('leaves the old snapshot whole when a write fails, and closes the temp file', async () => {
    const first = snapshotDb(new RecordingFileOps(), dir);
    first.data = doc({ journal: 1 });
    await first.write();
    for (const step of ['write', 'sync', 'rename']) {
      const ops = new RecordingFileOps();
      ops.fail = { prefix: step, error: errno('EIO', `EIO: i/o error, ${step}`) };
      const db = snapshotDb(ops, dir);
      db.data = doc({ journal: 2 });
      await expect(db.write(), step).rejects.toThrow(`EIO: i/o error, ${step}`);
      if (step !== 'rename') expect(ops.log.at(-1), step).toBe(`close ${TMP}`);
      expect(ops.log, step).not.toContain(`syncDir ${basename(dir)}`);
      expect((await readDoc())?.journal, step).toBe(1);
    }
  });
});
