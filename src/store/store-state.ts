import { join } from 'node:path';
import { CollectionArchive, type SegmentLimits } from './archive.js';
import type { Change } from './change.js';
import type { FileOps } from './file-ops.js';
import type { StoredRecord } from './store.js';

export interface KeyEntry {
  v: unknown;
  exp: number;
}

/**
 * The live records of one collection, by id, in insertion order; with an index per field asked
 * of where() (built on the first question, then kept up to date on every set and delete), so
 * that a lookup by field does not read the whole live set.
 */
export class LiveRecords extends Map<string, StoredRecord> {
  /** field → value → id → record */
  private indexes: Map<string, Map<string, Map<string, StoredRecord>>> | undefined;
  /** field → id → the value it is indexed under (records may be changed in place before a put). */
  private indexedAs: Map<string, Map<string, string>> | undefined;

  override set(id: string, record: StoredRecord): this {
    if (this.indexes) {
      this.unindex(id);
      for (const field of this.indexes.keys()) this.index(field, id, record);
    }
    return super.set(id, record);
  }

  override delete(id: string): boolean {
    if (this.indexes) this.unindex(id);
    return super.delete(id);
  }

  where(field: string, value: string): StoredRecord[] {
    this.indexes ??= new Map();
    this.indexedAs ??= new Map();
    if (!this.indexes.has(field)) {
      this.indexes.set(field, new Map());
      this.indexedAs.set(field, new Map());
      for (const [id, record] of this) this.index(field, id, record);
    }
    return [...(this.indexes.get(field)!.get(value)?.values() ?? [])];
  }

  private index(field: string, id: string, record: StoredRecord): void {
    const value = (record as unknown as Record<string, unknown>)[field];
    if (typeof value !== 'string' || !Object.hasOwn(record, field)) return;
    const byValue = this.indexes!.get(field)!;
    let ids = byValue.get(value);
    if (!ids) byValue.set(value, (ids = new Map()));
    ids.set(id, record);
    this.indexedAs!.get(field)!.set(id, value);
  }

  private unindex(id: string): void {
    for (const [field, byValue] of this.indexes!) {
      const as = this.indexedAs!.get(field)!;
      const value = as.get(id);
      if (value === undefined) continue;
      as.delete(id);
      const ids = byValue.get(value)!;
      ids.delete(id);
      if (ids.size === 0) byValue.delete(value);
    }
  }
}

/**
 * Everything the store holds in memory: the live records, the keys, and per collection its
 * archive (segments index + records archived since the last compaction). Maps throughout, so a
 * client-supplied id is never an object key.
 */
export class StoreState {
  readonly live = new Map<string, LiveRecords>();
  readonly keys = new Map<string, Map<string, KeyEntry>>();
  readonly archives = new Map<string, CollectionArchive>();

  constructor(
    private readonly ops: FileOps,
    private readonly archiveRoot: string,
    private readonly limits: SegmentLimits,
  ) {}

  liveMap(collection: string): LiveRecords {
    let m = this.live.get(collection);
    if (!m) this.live.set(collection, (m = new LiveRecords()));
    return m;
  }

  keySpace(space: string): Map<string, KeyEntry> {
    let m = this.keys.get(space);
    if (!m) this.keys.set(space, (m = new Map()));
    return m;
  }

  archive(collection: string): CollectionArchive {
    let a = this.archives.get(collection);
    if (!a) this.archives.set(collection, (a = CollectionArchive.empty(this.ops, join(this.archiveRoot, collection), this.limits)));
    return a;
  }

  /** Replays one change from the journal (the order of the journal is the truth). */
  apply(change: Change): void {
    switch (change[0]) {
      case 'p':
        this.liveMap(change[1]).set(change[2].id, change[2]);
        break;
      case 'a': {
        const [, collection, at, record] = change;
        this.liveMap(collection).delete(record.id);
        this.archive(collection).addRecent({ id: record.id, at, json: JSON.stringify(record), seq: 0 });
        break;
      }
      case 'r':
        this.liveMap(change[1]).delete(change[2]);
        break;
      case 's':
        this.keySpace(change[1]).set(change[2], { v: change[3], exp: change[4] });
        break;
      case 'd':
        this.keySpace(change[1]).delete(change[2]);
        break;
      case 'n':
        break;
    }
  }
}
