import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeFileOps } from '../src/store/file-ops.js';
import { textFrame } from '../src/store/frame.js';
import { Journal, JOURNAL_MAGIC, journalFileName, journalGenerations, readJournal } from '../src/store/journal.js';
import { FaultyFileOps } from './helpers/faulty-file-ops.js';

/** The journal on its own: file names, reading a file back, and the group-commit append side. */
let dir: string;
const journals: Journal[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lark-bridge-journal-'));
});
afterEach(async () => {
  for (const j of journals.splice(0)) j.abandon();
  await rm(dir, { recursive: true, force: true });
});

/** A mutant that leaves a promise hanging fails here in seconds, not at Stryker's timeout. */
const FAST = { timeout: 3_000 };
const path = (gen: number) => join(dir, journalFileName(gen));

async function openJournal(ops = new FaultyFileOps(), gen = 1, size = 0) {
  const journal = await Journal.open(ops, dir, gen, size);
  journals.push(journal);
  return { journal, ops };
}

/** The payloads of a journal file, and where reading stopped. */
async function contents(gen: number) {
  const payloads: string[] = [];
  const read = await readJournal(nodeFileOps, path(gen), (p) => {
    payloads.push(p.toString('utf8'));
    return true;
  });
  return { payloads, ...read };
}

describe('journal file names', FAST, () => {
  it('pads the generation to 8 digits, and takes more when it needs them', () => {
    expect(journalFileName(1)).toBe('journal-00000001.log');
    expect(journalFileName(12345678)).toBe('journal-12345678.log');
    expect(journalFileName(123456789)).toBe('journal-123456789.log');
  });

  it('lists the generations of a directory, oldest first by number, and nothing else', () => {
    const names = [
      'journal-00000010.log',
      'snapshot.json',
      'journal-123456789.log',
      'journal-00000002.log',
      'journal-00000009.log',
      'journal-0000001.log', // 7 digits: not ours
      'journal-00000003.log.bak',
      'old-journal-00000004.log',
      'journal-0000000a.log',
      'journal-00000005.txt',
      'archive',
    ];
    expect(journalGenerations(names)).toEqual([2, 9, 10, 123456789]);
    expect(journalGenerations([])).toEqual([]);
  });
});

describe('readJournal', FAST, () => {
  it('starts with the 8-byte header LBJRNL1\\n', () => {
    expect(JOURNAL_MAGIC).toEqual(Buffer.from('LBJRNL1\n'));
  });

  it('reads a missing or empty file as empty, without a problem', async () => {
    expect(await contents(1)).toEqual({ payloads: [], size: 0, end: 0 });
    await writeFile(path(1), '');
    expect(await contents(1)).toEqual({ payloads: [], size: 0, end: 0 });
  });

  it('reads the header alone as a good empty journal', async () => {
    await writeFile(path(1), JOURNAL_MAGIC);
    expect(await contents(1)).toEqual({ payloads: [], size: 8, end: 8 });
  });

  it('reads the records after the header and says where a torn tail begins', async () => {
    const good = Buffer.concat([JOURNAL_MAGIC, textFrame('["n"]'), textFrame('second')]);
    await writeFile(path(1), Buffer.concat([good, textFrame('torn').subarray(0, 10)]));
    expect(await contents(1)).toEqual({ payloads: ['["n"]', 'second'], size: good.length + 10, end: good.length, problem: 'the last record is cut short' });
  });

  it('refuses a file that does not start with the header, short or long, at byte 0', async () => {
    for (const text of ['LBJRNL', 'X', 'LBJRNL2\n', 'garbage that is not a journal']) {
      await writeFile(path(1), text);
      expect(await contents(1), text).toEqual({ payloads: [], size: text.length, end: 0, problem: 'the file does not start with a journal header' });
    }
  });

  it('stops where the caller cannot use a record', async () => {
    await writeFile(path(1), Buffer.concat([JOURNAL_MAGIC, textFrame('a'), textFrame('b'), textFrame('c')]));
    const seen: string[] = [];
    const read = await readJournal(nodeFileOps, path(1), (p) => (seen.push(p.toString()), p.toString() !== 'b'));
    expect(seen).toEqual(['a', 'b']);
    expect(read).toEqual({ size: 8 + 3 * 9, end: 8 + 9, problem: 'a record holds no change this version knows' });
  });
});

describe('Journal.open', FAST, () => {
  it('creates the generation with its header (synced, directory synced) when it is new', async () => {
    const { journal, ops } = await openJournal(new FaultyFileOps(), 3, 0);
    expect(journal.generation).toBe(3);
    expect(await readFile(path(3))).toEqual(JOURNAL_MAGIC);
    expect(await readdir(dir)).toEqual([journalFileName(3)]);
    expect(ops.counts).toMatchObject({ writes: 1, datasyncs: 1, syncs: 1 });
  });

  it('starts a file shorter than its header over, under the same generation', async () => {
    await writeFile(path(2), 'LBJ');
    const { journal } = await openJournal(new FaultyFileOps(), 2, 3);
    expect(journal.generation).toBe(2);
    expect(await readFile(path(2))).toEqual(JOURNAL_MAGIC);
    await journal.append(textFrame('x'));
    expect((await contents(2)).payloads).toEqual(['x']);
  });

  it('continues an existing file at the given size, cutting whatever follows', async () => {
    const good = Buffer.concat([JOURNAL_MAGIC, textFrame('one')]);
    await writeFile(path(4), Buffer.concat([good, Buffer.from('torn bytes')]));
    const { journal } = await openJournal(new FaultyFileOps(), 4, good.length);
    expect(journal.generation).toBe(4);
    expect(await readFile(path(4))).toEqual(good);
    await journal.append(textFrame('two'));
    expect(await contents(4)).toEqual({ payloads: ['one', 'two'], size: good.length + 11, end: good.length + 11 });
    expect(await readdir(dir)).toEqual([journalFileName(4)]);
  });

  it('continues a file holding just its header at size 8', async () => {
    await writeFile(path(1), JOURNAL_MAGIC);
    const { journal, ops } = await openJournal(new FaultyFileOps(), 1, 8);
    expect(ops.counts).toEqual({ writes: 0, bytes: 0, datasyncs: 0, syncs: 0 }); // nothing to write: not started over
    await journal.append(textFrame('a'));
    expect(await readFile(path(1))).toEqual(Buffer.concat([JOURNAL_MAGIC, textFrame('a')]));
  });
});

describe('Journal: group commit', FAST, () => {
  it('writes the changes appended in one tick with one write and one fdatasync, in order, and counts them', async () => {
    const { journal, ops } = await openJournal();
    const before = { ...ops.counts };
    const frames = ['a', 'bb', 'ccc'].map((t) => textFrame(t));
    await Promise.all(frames.map((f) => journal.append(f)));
    expect(ops.counts.writes - before.writes).toBe(1);
    expect(ops.counts.datasyncs - before.datasyncs).toBe(1);
    const bytes = 9 + 10 + 11;
    expect(journal.stats).toEqual({ commits: 1, bytes });
    expect(journal.bytesSinceRotation).toBe(bytes);
    expect(journal.lastSeq).toBe(3);
    expect((await contents(1)).payloads).toEqual(['a', 'bb', 'ccc']);
  });

  it('answers nobody before the write and the fdatasync are done', async () => {
    const { journal, ops } = await openJournal();
    let release!: () => void;
    let writing = false;
    ops.beforeWrite = () => ((writing = true), new Promise<void>((r) => (release = r)));
    let settled = false;
    const done = journal.append(textFrame('held')).then(() => (settled = true));
    while (!writing) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    ops.beforeWrite = null;
    release();
    await done;
    expect(settled).toBe(true);
    expect((await contents(1)).payloads).toEqual(['held']);
  });

  it('puts changes appended while a commit is in flight into the next commit, after it', async () => {
    const { journal, ops } = await openJournal();
    let release!: () => void;
    let writing = false;
    ops.beforeWrite = () => ((writing = true), new Promise<void>((r) => (release = r)));
    const first = journal.append(textFrame('first'));
    while (!writing) await new Promise((r) => setImmediate(r));
    ops.beforeWrite = null;
    const later = [journal.append(textFrame('second')), journal.append(textFrame('third'))];
    release();
    await Promise.all([first, ...later]);
    expect(journal.stats.commits).toBe(2);
    expect(journal.lastSeq).toBe(3);
    expect((await contents(1)).payloads).toEqual(['first', 'second', 'third']);
  });

  it('appends commit after commit at the end of the file', async () => {
    const { journal } = await openJournal();
    for (const t of ['one', 'two', 'three']) await journal.append(textFrame(t));
    expect(journal.stats.commits).toBe(3);
    expect(journal.lastSeq).toBe(3);
    expect(await contents(1)).toEqual({ payloads: ['one', 'two', 'three'], size: 8 + 11 + 11 + 13, end: 8 + 11 + 11 + 13 });
  });

  it('tells onCommit the duration in seconds and the bytes of each commit; an onCommit that throws fails nothing', async () => {
    const { journal } = await openJournal();
    const seen: Array<[number, number]> = [];
    journal.onCommit = (s, b) => void seen.push([s, b]);
    await Promise.all([journal.append(textFrame('a')), journal.append(textFrame('b'))]);
    expect(seen).toHaveLength(1);
    expect(seen[0]![1]).toBe(18);
    expect(seen[0]![0]).toBeGreaterThanOrEqual(0);
    expect(seen[0]![0]).toBeLessThan(1);
    journal.onCommit = () => {
      throw new Error('metrics broke');
    };
    await expect(journal.append(textFrame('c'))).resolves.toBeUndefined();
    expect(journal.lastError).toBeNull();
    expect((await contents(1)).payloads).toEqual(['a', 'b', 'c']);
  });

  it('idle() waits for what is pending and in flight', async () => {
    const { journal } = await openJournal();
    void journal.append(textFrame('a'));
    void journal.append(textFrame('b'));
    await journal.idle();
    expect(journal.stats.commits).toBe(1);
    expect((await contents(1)).payloads).toEqual(['a', 'b']);
    void journal.rotate();
    await journal.idle();
    expect(journal.generation).toBe(2);
    await journal.idle(); // nothing to wait for
  });

  it('close() lets pending changes reach the disk, then refuses more', async () => {
    const { journal } = await openJournal();
    const pending = journal.append(textFrame('last'));
    await journal.close();
    await expect(pending).resolves.toBeUndefined();
    expect((await contents(1)).payloads).toEqual(['last']);
    await expect(journal.append(textFrame('late'))).rejects.toThrow('the store is closed');
    expect((await contents(1)).payloads).toEqual(['last']);
    await journal.close(); // twice is fine
  });

  it('abandon() drops the handle without waiting, and refuses more', async () => {
    const { journal } = await openJournal();
    await journal.append(textFrame('kept'));
    journal.abandon();
    await expect(journal.append(textFrame('late'))).rejects.toThrow('the store is closed');
    expect((await contents(1)).payloads).toEqual(['kept']);
    await journal.close(); // after a crash stand-in, close has nothing left to do
  });
});

describe('Journal: rotation', FAST, () => {
  it('starts the next generation between two commits and says which changes went to the older one', async () => {
    const { journal } = await openJournal();
    await journal.append(textFrame('old-1'));
    await journal.append(textFrame('old-2'));
    expect(journal.bytesSinceRotation).toBeGreaterThan(0);
    const appended = journal.append(textFrame('new-1')); // in the same tick as the rotation: goes to the new file
    const rotation = await journal.rotate();
    await appended;
    expect(rotation).toEqual({ gen: 2, cutSeq: 2 });
    expect(journal.generation).toBe(2);
    expect(journal.bytesSinceRotation).toBe(textFrame('new-1').length);
    expect((await contents(1)).payloads).toEqual(['old-1', 'old-2']);
    expect((await contents(2)).payloads).toEqual(['new-1']);
    await journal.append(textFrame('new-2'));
    expect((await contents(2)).payloads).toEqual(['new-1', 'new-2']);
    expect(await journal.rotate()).toEqual({ gen: 3, cutSeq: 4 });
    expect(journal.bytesSinceRotation).toBe(0);
    expect(await readFile(path(3))).toEqual(JOURNAL_MAGIC);
  });

  it('answers every caller of rotate() in one tick with the same rotation', async () => {
    const { journal } = await openJournal();
    await journal.append(textFrame('x'));
    const [a, b] = await Promise.all([journal.rotate(), journal.rotate()]);
    expect(a).toEqual({ gen: 2, cutSeq: 1 });
    expect(b).toBe(a);
    expect(journal.generation).toBe(2);
  });

  it('rejects a rotation whose file cannot be created; the changes after it go to the next generation that can', async () => {
    const { journal } = await openJournal();
    await journal.append(textFrame('before'));
    await writeFile(path(2), 'in the way');
    await expect(journal.rotate()).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(journal.append(textFrame('refused'))).rejects.toMatchObject({ code: 'EEXIST' });
    await rm(path(2));
    await journal.append(textFrame('after'));
    expect(journal.generation).toBe(2);
    expect((await contents(1)).payloads).toEqual(['before']);
    expect((await contents(2)).payloads).toEqual(['after']);
  });

  it('never reuses a generation whose header write failed', async () => {
    const { journal, ops } = await openJournal();
    ops.fault = { at: 'write', code: 'EIO', file: /journal-00000002/ };
    await expect(journal.rotate()).rejects.toMatchObject({ code: 'EIO' });
    ops.fault = null;
    await journal.append(textFrame('after'));
    expect(journal.generation).toBe(3);
    expect((await contents(3)).payloads).toEqual(['after']);
    expect(await readFile(path(2))).toHaveLength(0);
  });
});

describe('Journal: a failing disk', FAST, () => {
  for (const fault of [
    { at: 'write' as const, code: 'ENOSPC' as const },
    { at: 'datasync' as const, code: 'EIO' as const },
    // The link count is read beside the write: its failure rejects the batch too, once the write has settled.
    { at: 'links' as const, code: 'EIO' as const },
  ]) {
    it(`rejects the whole batch whose ${fault.at} fails, cuts the file back, and goes on in a new generation`, async () => {
      const { journal, ops } = await openJournal();
      await journal.append(textFrame('good'));
      ops.fault = fault;
      const results = await Promise.allSettled([journal.append(textFrame('lost-1')), journal.append(textFrame('lost-2'))]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((results[0] as PromiseRejectedResult).reason)).toContain(fault.code);
      expect((journal.lastError as NodeJS.ErrnoException).code).toBe(fault.code);
      expect(journal.stats.commits).toBe(1);
      expect(await contents(1)).toEqual({ payloads: ['good'], size: 8 + 12, end: 8 + 12 }); // no half batch left behind
      ops.fault = null;
      await journal.append(textFrame('next'));
      expect(journal.lastError).toBeNull();
      expect(journal.generation).toBe(2);
      expect((await contents(2)).payloads).toEqual(['next']);
      expect((await contents(1)).payloads).toEqual(['good']);
      await journal.append(textFrame('then'));
      expect((await contents(2)).payloads).toEqual(['next', 'then']);
      expect(journal.generation).toBe(2);
    });
  }

  it('refuses to write to a journal file deleted while open, naming it', async () => {
    const { journal } = await openJournal();
    await journal.append(textFrame('a'));
    await unlink(path(1));
    await expect(journal.append(textFrame('b'))).rejects.toThrow(`${path(1)} was deleted while open (is DATA_DIR still there?)`);
    await journal.append(textFrame('c')); // a new generation, which is there
    expect((await contents(2)).payloads).toEqual(['c']);
  });
});
