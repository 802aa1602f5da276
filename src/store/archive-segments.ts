import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Low } from 'lowdb';
import { AtomicJsonFile } from './atomic-json-file.js';
import { BatchedWriter } from './batched-writer.js';
import type { RetentionPolicy, StoredRecord } from './store.js';

interface SegmentDoc {
  lastAt: number;
  records: StoredRecord[];
}

interface Segment {
  file: string;
  day: string;
  seq: number;
  ids: string[];
  bytes: number;
  lastAt: number;
}

interface OpenSegment {
  segment: Segment;
  db: Low<SegmentDoc>;
  writer: BatchedWriter;
}

export interface SegmentLimits {
  maxRecords: number;
  maxBytes: number;
}

const CACHE_SEGMENTS = 4;

/**
 * Finished records of one collection, in dated segment files of bounded size
 * (`<dir>/<YYYY-MM-DD>/<seq>.json`). Only the open segment is ever rewritten, so archiving costs
 * the size of one segment, however much history is kept.
 */
export class ArchiveSegments {
  private readonly segments: Segment[] = [];
  private readonly index = new Map<string, Segment>();
  private readonly cache = new Map<string, Map<string, StoredRecord>>();
  private open: OpenSegment | null = null;
  private nextSeq = 1;

  private constructor(
    private readonly dir: string,
    private readonly limits: SegmentLimits,
  ) {}

  static async load(dir: string, limits: SegmentLimits): Promise<ArchiveSegments> {
    const archive = new ArchiveSegments(dir, limits);
    await archive.scan();
    return archive;
  }

  get count(): number {
    return this.index.size;
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    const segment = this.index.get(id);
    if (!segment) return undefined;
    if (this.open?.segment === segment) return this.open.db.data.records.findLast((r) => r.id === id); // an id archived twice: the newest copy
    let records = this.cache.get(segment.file);
    if (!records) {
      const doc = JSON.parse(await readFile(segment.file, 'utf8')) as SegmentDoc;
      records = new Map(doc.records.map((r) => [r.id, r]));
      this.cache.set(segment.file, records);
      if (this.cache.size > CACHE_SEGMENTS) this.cache.delete(this.cache.keys().next().value as string);
    }
    return records.get(id);
  }

  /** Appends the record to the open segment; resolves when it is on disk. */
  add(record: StoredRecord, now: number): Promise<void> {
    const open = this.openSegmentFor(now);
    const bytes = JSON.stringify(record).length;
    open.db.data.records.push(record);
    open.db.data.lastAt = now;
    open.segment.ids.push(record.id);
    open.segment.bytes += bytes;
    open.segment.lastAt = now;
    this.index.set(record.id, open.segment);
    return open.writer.commit();
  }

  async prune(now: number, policy: RetentionPolicy): Promise<number> {
    let removed = 0;
    const cutoff = now - policy.maxAgeMs;
    while (this.segments.length > 0) {
      const oldest = this.segments[0]!;
      const tooOld = oldest.lastAt < cutoff;
      // Count retention is per segment: keep at least maxCount, drop whole segments beyond it.
      const tooMany = this.index.size - oldest.ids.length >= policy.maxCount;
      if (!tooOld && !tooMany) break;
      if (this.open?.segment === oldest) {
        if (!tooOld) break; // never drop the segment still being written for count alone
        await this.open.writer.idle();
        this.open = null;
      }
      this.segments.shift();
      for (const id of oldest.ids) if (this.index.get(id) === oldest) this.index.delete(id);
      this.cache.delete(oldest.file);
      removed += oldest.ids.length;
      await rm(oldest.file, { force: true });
      await rmdir(join(this.dir, oldest.day)).catch(() => undefined); // only succeeds when empty
    }
    return removed;
  }

  async flush(): Promise<void> {
    await this.open?.writer.idle();
  }

  private openSegmentFor(now: number): OpenSegment {
    const day = new Date(now).toISOString().slice(0, 10);
    const current = this.open;
    if (
      current &&
      current.segment.day === day &&
      current.segment.ids.length < this.limits.maxRecords &&
      current.segment.bytes < this.limits.maxBytes
    ) {
      return current;
    }
    const seq = this.nextSeq++;
    const file = join(this.dir, day, `${String(seq).padStart(8, '0')}.json`);
    const segment: Segment = { file, day, seq, ids: [], bytes: 0, lastAt: now };
    this.segments.push(segment);
    const db = new Low<SegmentDoc>(new AtomicJsonFile(file), { lastAt: now, records: [] });
    this.open = { segment, db, writer: new BatchedWriter(() => db.write()) };
    return this.open;
  }

  private async scan(): Promise<void> {
    const days = (await readdir(this.dir).catch(() => [] as string[])).filter((d) => /^\d{4}-\d{2}-\d{2}$/.test(d)).sort();
    for (const day of days) {
      const files = (await readdir(join(this.dir, day))).filter((f) => /^\d+\.json$/.test(f)).sort();
      for (const name of files) {
        const file = join(this.dir, day, name);
        const text = await readFile(file, 'utf8');
        const doc = JSON.parse(text) as SegmentDoc;
        const seq = Number(name.slice(0, -5));
        const segment: Segment = {
          file,
          day,
          seq,
          ids: doc.records.map((r) => r.id),
          bytes: text.length,
          lastAt: doc.lastAt,
        };
        this.segments.push(segment);
        for (const id of segment.ids) this.index.set(id, segment);
        this.nextSeq = Math.max(this.nextSeq, seq + 1);
      }
    }
    // Oldest first by last write, so pruning removes the oldest history.
    this.segments.sort((a, b) => a.lastAt - b.lastAt || a.seq - b.seq);
  }
}
