import { join } from 'node:path';
import type { FileOps, StoreFile } from './file-ops.js';
import { scanFrames, type FrameScan } from './frame.js';

/** Each journal file starts with these 8 bytes. */
export const JOURNAL_MAGIC = Buffer.from('LBJRNL1\n');

export function journalFileName(gen: number): string {
  return `journal-${String(gen).padStart(8, '0')}.log`;
}

/** Generations of the journal files in a directory listing, oldest first. */
export function journalGenerations(names: string[]): number[] {
  const gens: number[] = [];
  for (const name of names) {
    const m = /^journal-(\d{8,})\.log$/.exec(name);
    if (m) gens.push(Number(m[1]));
  }
  return gens.sort((a, b) => a - b);
}

export interface JournalRead extends FrameScan {
  size: number;
}

/** Reads one journal file, calling onPayload for each good record; stops at the first bad one. */
export async function readJournal(ops: FileOps, path: string, onPayload: (payload: Buffer) => boolean): Promise<JournalRead> {
  const buf = (await ops.readFile(path)) ?? Buffer.alloc(0);
  if (buf.length === 0) return { size: 0, end: 0 };
  if (buf.length < JOURNAL_MAGIC.length || !buf.subarray(0, JOURNAL_MAGIC.length).equals(JOURNAL_MAGIC)) {
    return { size: buf.length, end: 0, problem: 'the file does not start with a journal header' };
  }
  return { size: buf.length, ...scanFrames(buf, JOURNAL_MAGIC.length, onPayload) };
}

interface Batch {
  frames: Buffer[];
  bytes: number;
  lastSeq: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface Rotation {
  /** The generation new changes now go to. */
  gen: number;
  /** Every change appended with a sequence number up to this one went to an older generation. */
  cutSeq: number;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The append side of the journal: group commit. Every change appended in one tick (or while a
 * commit is in flight) is written with one positional write and one fdatasync; each caller's
 * promise resolves only after that. After a failed write or sync the file is cut back to its
 * last good length and the next commit starts a new generation file, so a half-written batch
 * never sits in front of later good ones.
 */
export class Journal {
  lastError: unknown = null;
  /** Bytes appended since the last rotation (the compaction trigger). */
  bytesSinceRotation = 0;
  /** Counters for tests and benchmarks. */
  readonly stats = { commits: 0, bytes: 0 };
  /** Told the duration (s) and size of each successful group commit (metrics). */
  onCommit?: (seconds: number, bytes: number) => void;
  private pending: Batch | null = null;
  private inFlight: Promise<void> | null = null;
  private scheduled = false;
  private rotation: ReturnType<typeof deferred<Rotation>> | null = null;
  private needNewFile = false;
  private seq = 0;
  private takenSeq = 0;
  private closed = false;

  constructor(
    private readonly ops: FileOps,
    private readonly dir: string,
    private gen: number,
    private file: StoreFile | null,
    private size: number,
  ) {}

  /** Opens generation `gen` for appending at `size` (a file that does not exist yet is created). */
  static async open(ops: FileOps, dir: string, gen: number, size: number): Promise<Journal> {
    const path = join(dir, journalFileName(gen));
    if (size < JOURNAL_MAGIC.length) {
      await ops.remove(path);
      const journal = new Journal(ops, dir, gen - 1, null, 0);
      await journal.startNewFile();
      return journal;
    }
    const file = await ops.openExisting(path);
    await file.truncate(size);
    return new Journal(ops, dir, gen, file, size);
  }

  get generation(): number {
    return this.gen;
  }

  /** Sequence number of the last change appended. */
  get lastSeq(): number {
    return this.seq;
  }

  /** Queues one framed change for the next group commit; resolves once it is on disk. */
  append(framed: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    if (!this.pending) this.pending = { frames: [], bytes: 0, lastSeq: 0, ...deferred<void>() };
    this.pending.frames.push(framed);
    this.pending.bytes += framed.length;
    this.pending.lastSeq = ++this.seq;
    this.schedule();
    return this.pending.promise;
  }

  /** Starts a new generation between two commits; resolves once later changes go there. */
  rotate(): Promise<Rotation> {
    this.rotation ??= deferred<Rotation>();
    const { promise } = this.rotation;
    this.schedule();
    return promise;
  }

  /** Resolves when nothing is pending or in flight. */
  async idle(): Promise<void> {
    while (this.inFlight || this.pending || this.rotation) {
      // Equivalent mutants (README, "Tests that bite"): inside the loop one of the three is set, and each is
      // cleared before it settles, so the optional chains never see undefined and the yield below never runs.
      // Stryker disable next-line all
      await (this.inFlight ?? this.pending?.promise ?? this.rotation?.promise)?.catch(() => undefined);
      // Stryker disable next-line all
      if (!this.inFlight && (this.pending || this.rotation)) await new Promise((r) => setImmediate(r));
    }
  }

  async close(): Promise<void> {
    await this.idle();
    this.closed = true;
    await this.file?.close().catch(() => undefined);
    this.file = null;
  }

  /** Drops the file handle without waiting for anything (a test's stand-in for a crash). */
  abandon(): void {
    this.closed = true;
    void this.file?.close().catch(() => undefined);
    this.file = null;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    // setImmediate lets every request handled in this tick join the same commit.
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    if (this.inFlight || (!this.pending && !this.rotation)) return;
    this.inFlight = (async () => {
      const rotation = this.rotation;
      if (rotation) {
        this.rotation = null;
        try {
          await this.startNewFile();
          this.bytesSinceRotation = 0;
          rotation.resolve({ gen: this.gen, cutSeq: this.takenSeq });
        } catch (err) {
          rotation.reject(err);
        }
      }
      const batch = this.pending;
      this.pending = null;
      if (batch) {
        this.takenSeq = batch.lastSeq;
        await this.commit(batch);
      }
    })().finally(() => {
      this.inFlight = null;
      if (this.pending || this.rotation) this.schedule();
    });
  }

  private async commit(batch: Batch): Promise<void> {
    const started = performance.now();
    try {
      if (this.needNewFile || !this.file) await this.startNewFile();
      const file = this.file!;
      const data = batch.frames.length === 1 ? batch.frames[0]! : Buffer.concat(batch.frames, batch.bytes);
      // An unlinked file still takes writes: they would be lost at the next start. The link
      // count is read beside the write (one thread-pool round trip less per commit); both
      // settle before anything is decided, so a failure cuts back after the write, not during it.
      const [links, written] = await Promise.allSettled([file.links(), file.write(data, this.size)]);
      if (links.status === 'rejected') throw links.reason;
      if (written.status === 'rejected') throw written.reason;
      if (links.value === 0) throw new Error(`${file.path} was deleted while open (is DATA_DIR still there?)`);
      await file.datasync();
      this.size += data.length;
      this.bytesSinceRotation += data.length;
      this.stats.commits++;
      this.stats.bytes += data.length;
      this.lastError = null;
      batch.resolve();
    } catch (err) {
      this.lastError = err;
      this.needNewFile = true;
      await this.file?.truncate(this.size).catch(() => undefined);
      batch.reject(err);
      return;
    }
    // After the commit's own bookkeeping: an observer that throws cannot fail a commit.
    try {
      this.onCommit?.((performance.now() - started) / 1000, batch.bytes);
    } catch {
      // metrics are best effort
    }
  }

  /** Creates the next generation file (header written and synced, directory synced). */
  private async startNewFile(): Promise<void> {
    // Until this succeeds, no commit may append to whatever file is current.
    this.needNewFile = true;
    const gen = this.gen + 1;
    const file = await this.ops.create(join(this.dir, journalFileName(gen)));
    const old = this.file;
    this.gen = gen; // taken even if the header write fails: generations are never reused
    this.file = file;
    this.size = 0;
    await old?.close().catch(() => undefined);
    await file.write(JOURNAL_MAGIC, 0);
    await file.datasync();
    await this.ops.syncDir(this.dir);
    this.size = JOURNAL_MAGIC.length;
    this.needNewFile = false;
  }
}
