import { dirname, join } from 'node:path';
import type { FileOps } from './file-ops.js';
import { FRAME_HEADER_BYTES, frame, readFrame, scanFrames } from './frame.js';
import type { RetentionPolicy, StoredRecord } from './store.js';

export interface SegmentLimits {
  maxRecords: number;
  maxBytes: number;
}

/** How far the segments of a collection are known durable (recorded in the snapshot). */
export interface Frontier {
  seq: number;
  bytes: number;
}

interface Segment {
  seq: number;
  day: string;
  file: string;
  bytes: number;
  lastAt: number;
  ids: string[];
}

/** A record archived since the last compaction: its JSON is held until it moves to a segment. */
export interface RecentEntry {
  id: string;
  at: number;
  json: string;
  /** Journal sequence number of its archive change (0 when replayed at start). */
  seq: number;
}

type Location = { seg: Segment; off: number; len: number } | { recent: RecentEntry };

export type Warn = (message: string) => void;

const DAY_DIR = /^\d{4}-\d{2}-\d{2}$/;
const SEGMENT_FILE = /^(\d{8,})\.seg$/;

/** Segment payload: id length (u16 LE), id, archivedAt (f64 LE), record JSON. The id is readable without parsing. */
function encodeEntry(entry: RecentEntry): Buffer {
  const idBytes = Buffer.byteLength(entry.id);
  const jsonBytes = Buffer.byteLength(entry.json);
  const payload = Buffer.allocUnsafe(2 + idBytes + 8 + jsonBytes);
  payload.writeUInt16LE(idBytes, 0);
  payload.write(entry.id, 2, 'utf8');
  payload.writeDoubleLE(entry.at, 2 + idBytes);
  payload.write(entry.json, 2 + idBytes + 8, 'utf8');
  return frame(payload);
}

function decodeHead(payload: Buffer): { id: string; at: number; jsonStart: number } {
  const idBytes = payload.readUInt16LE(0);
  return { id: payload.toString('utf8', 2, 2 + idBytes), at: payload.readDoubleLE(2 + idBytes), jsonStart: 2 + idBytes + 8 };
}

/**
 * The finished records of one collection: append-only segment files
 * `<dir>/<YYYY-MM-DD>/<seq>.seg`, never rewritten, plus the records archived since the last
 * compaction (held in memory; the journal holds them durably). An index id → (segment, offset)
 * is rebuilt at start; the last copy of an id wins. Retention drops whole segment files.
 */
export class CollectionArchive {
  private readonly segments: Segment[] = [];
  private readonly index = new Map<string, Location>();
  private recent: RecentEntry[] = [];
  private nextSeq = 1;

  private constructor(
    private readonly ops: FileOps,
    readonly dir: string,
    private readonly limits: SegmentLimits,
  ) {}

  static empty(ops: FileOps, dir: string, limits: SegmentLimits): CollectionArchive {
    return new CollectionArchive(ops, dir, limits);
  }

  /**
   * Loads the segments. With a frontier (from the snapshot), bytes past it were written by a
   * compaction that did not finish (the journal still holds those records): they are cut. A bad
   * record inside the durable part is damage: that file is moved aside as *.damaged.
   */
  static async load(ops: FileOps, dir: string, limits: SegmentLimits, frontier: Frontier | 'all', warn: Warn): Promise<CollectionArchive> {
    const archive = new CollectionArchive(ops, dir, limits);
    const files: Array<{ seq: number; day: string; file: string }> = [];
    for (const day of (await ops.list(dir)).filter((d) => DAY_DIR.test(d))) {
      for (const name of await ops.list(join(dir, day))) {
        const m = SEGMENT_FILE.exec(name);
        if (m) files.push({ seq: Number(m[1]), day, file: join(dir, day, name) });
      }
    }
    files.sort((a, b) => a.seq - b.seq);
    for (const f of files) {
      if (frontier !== 'all' && f.seq > frontier.seq) {
        await ops.remove(f.file); // its number is free again: nothing committed refers to it
        continue;
      }
      archive.nextSeq = Math.max(archive.nextSeq, f.seq + 1);
      let buf = (await ops.readFile(f.file)) ?? Buffer.alloc(0);
      const durable = frontier !== 'all' && f.seq === frontier.seq ? frontier.bytes : buf.length;
      if (buf.length > durable) {
        const file = await ops.openExisting(f.file);
        await file.truncate(durable).finally(() => file.close());
        buf = buf.subarray(0, durable);
      }
      const segment: Segment = { ...f, bytes: 0, lastAt: 0, ids: [] };
      const found: Array<[string, Location]> = [];
      const scan = scanFrames(buf, 0, (payload, off) => {
        const head = decodeHead(payload);
        segment.ids.push(head.id);
        segment.lastAt = Math.max(segment.lastAt, head.at);
        found.push([head.id, { seg: segment, off, len: FRAME_HEADER_BYTES + payload.length }]);
      });
      const short = buf.length < durable;
      if (scan.problem || short) {
        const aside = `${f.file}.damaged`;
        await ops.rename(f.file, aside);
        const why = scan.problem ? `at byte ${scan.end} ${scan.problem}` : `it is ${buf.length} bytes, the snapshot says ${durable}`;
        warn(`archive segment ${f.file} is damaged (${why}); moved aside to ${aside}; starting without the ${segment.ids.length} records before the damage`);
        continue;
      }
      segment.bytes = buf.length;
      archive.segments.push(segment);
      for (const [id, loc] of found) archive.index.set(id, loc);
    }
    if (frontier !== 'all') archive.nextSeq = Math.max(archive.nextSeq, frontier.seq + 1);
    return archive;
  }

  /** Archived ids (in segments and since the last compaction). */
  get count(): number {
    return this.index.size;
  }

  get hasSegments(): boolean {
    return this.segments.length > 0;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  /** Records an archived copy (newest wins); it moves to a segment at the next compaction. */
  addRecent(entry: RecentEntry): void {
    this.recent.push(entry);
    this.index.set(entry.id, { recent: entry });
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    const loc = this.index.get(id);
    if (!loc) return undefined;
    if ('recent' in loc) return JSON.parse(loc.recent.json) as StoredRecord;
    let buf: Buffer;
    try {
      const file = await this.ops.openExisting(loc.seg.file);
      buf = await file.read(loc.len, loc.off).finally(() => file.close());
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // pruned meanwhile
      throw err;
    }
    const payload = readFrame(buf);
    if (!payload) throw new Error(`archive segment ${loc.seg.file} holds no readable record at byte ${loc.off}`);
    return JSON.parse(payload.toString('utf8', decodeHead(payload).jsonStart)) as StoredRecord;
  }

  /** Where the durable segments end: the last segment and its length. */
  frontier(): Frontier {
    const last = this.segments.at(-1);
    return last ? { seq: last.seq, bytes: last.bytes } : { seq: this.nextSeq - 1, bytes: 0 };
  }

  /**
   * Appends the recent entries with a journal sequence up to cutSeq to segment files, syncs
   * them, and points the index there. Runs inside a compaction, never concurrently with itself.
   */
  async moveToSegments(cutSeq: number): Promise<void> {
    let n = 0;
    while (n < this.recent.length && this.recent[n]!.seq <= cutSeq) n++;
    let i = 0;
    while (i < n) {
      const seg = this.segmentFor(this.recent[i]!.at);
      const start = seg.bytes;
      const frames: Buffer[] = [];
      const placed: Array<[RecentEntry, Location]> = [];
      let bytes = start;
      let count = seg.ids.length;
      while (i < n && dayOf(this.recent[i]!.at) === seg.day && count < this.limits.maxRecords && (bytes < this.limits.maxBytes || bytes === start)) {
        const entry = this.recent[i++]!;
        const f = encodeEntry(entry);
        frames.push(f);
        placed.push([entry, { seg, off: bytes, len: f.length }]);
        bytes += f.length;
        count++;
      }
      await this.writeSegment(seg, start, Buffer.concat(frames));
      seg.bytes = bytes;
      for (const [entry, loc] of placed) {
        seg.ids.push(entry.id);
        seg.lastAt = Math.max(seg.lastAt, entry.at);
        const current = this.index.get(entry.id);
        if (current && 'recent' in current && current.recent === entry) this.index.set(entry.id, loc);
      }
      this.recent.splice(0, placed.length);
      n -= placed.length;
      i -= placed.length;
    }
  }

  /** Drops whole segments, oldest first, past the age or beyond the count. Returns records dropped. */
  async prune(now: number, policy: RetentionPolicy): Promise<number> {
    let removed = 0;
    const cutoff = now - policy.maxAgeMs;
    while (this.segments.length > 0) {
      const oldest = this.segments[0]!;
      const tooOld = oldest.lastAt < cutoff;
      // Count retention is per segment: keep at least maxCount, drop whole segments beyond it.
      const tooMany = this.index.size - oldest.ids.length >= policy.maxCount;
      if (!tooOld && !tooMany) break;
      if (!tooOld && this.segments.length === 1) break; // never drop the segment still being written for count alone
      this.segments.shift();
      for (const id of oldest.ids) {
        const loc = this.index.get(id);
        if (loc && 'seg' in loc && loc.seg === oldest) {
          this.index.delete(id);
          removed++;
        }
      }
      await this.ops.remove(oldest.file);
      const dayDir = join(this.dir, oldest.day);
      if ((await this.ops.list(dayDir)).length === 0) await this.ops.remove(dayDir);
    }
    return removed;
  }

  private segmentFor(at: number): Segment {
    const day = dayOf(at);
    const last = this.segments.at(-1);
    if (last && last.day === day && last.ids.length < this.limits.maxRecords && last.bytes < this.limits.maxBytes) return last;
    const seq = this.nextSeq++;
    const segment: Segment = { seq, day, file: join(this.dir, day, `${String(seq).padStart(8, '0')}.seg`), bytes: 0, lastAt: at, ids: [] };
    this.segments.push(segment);
    return segment;
  }

  private async writeSegment(seg: Segment, start: number, data: Buffer): Promise<void> {
    const dayDir = join(this.dir, seg.day);
    const fresh = start === 0;
    if (fresh) await this.ops.mkdir(dayDir);
    const file = fresh ? await this.ops.create(seg.file).catch(() => this.ops.openExisting(seg.file)) : await this.ops.openExisting(seg.file);
    try {
      await file.write(data, start);
      await file.datasync();
    } catch (err) {
      await file.truncate(start).catch(() => undefined);
      throw err;
    } finally {
      await file.close();
    }
    if (fresh) {
      // The new file's entry, and the folders above it that mkdir may have just made.
      await this.ops.syncDir(dayDir);
      await this.ops.syncDir(this.dir);
      await this.ops.syncDir(dirname(this.dir));
    }
  }
}

function dayOf(at: number): string {
  return new Date(at).toISOString().slice(0, 10);
}
