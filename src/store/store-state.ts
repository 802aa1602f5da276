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
 * Everything the store holds in memory: the live records, the keys, and per collection its
 * archive (segments index + records archived since the last compaction). Maps throughout, so a
 * client-supplied id is never an object key.
 */
export class StoreState {
  readonly live = new Map<string, Map<string, StoredRecord>>();
  readonly keys = new Map<string, Map<string, KeyEntry>>();
  readonly archives = new Map<string, CollectionArchive>();

  constructor(
    private readonly ops: FileOps,
    private readonly archiveRoot: string,
    private readonly limits: SegmentLimits,
  ) {}

  liveMap(collection: string): Map<string, StoredRecord> {
    let m = this.live.get(collection);
    if (!m) this.live.set(collection, (m = new Map()));
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
