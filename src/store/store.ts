/**
 * Persistence as the rest of the code sees it. Implementation today: the journal store
 * (open-store.ts: an append-only journal, a lowdb snapshot, append-only archive segments).
 *
 * Contract: a promise returned by a mutating call resolves only once the change is durable, so
 * a caller that awaits it may acknowledge the change to a client. Reads are async so that a
 * server database can stand behind the same interface.
 */
export interface StoredRecord {
  id: string;
  /** ISO time of the last change: of two copies of a record, the one written last wins (and is the newer). */
  updatedAt?: string;
}

export interface RecordCollection<T extends StoredRecord> {
  /** The record, live or archived (a live copy wins; of two archived copies, the last archived). */
  get(id: string): Promise<T | undefined>;
  /** The live set (records not yet archived). */
  live(): Promise<T[]>;
  /** Inserts or replaces a live record. */
  put(record: T): Promise<void>;
  /** Moves a finished record out of the live set into the archive (a later put brings it back to live). */
  archive(record: T): Promise<void>;
  /** Drops a live record (used to undo an insert that could not be made durable). */
  remove(id: string): Promise<void>;
  /** How many records are archived. */
  archivedCount(): number;
}

export interface KeySpace<V> {
  get(key: string): Promise<V | undefined>;
  /** Remembers value under key until expiresAt (ms since epoch). */
  set(key: string, value: V, expiresAt: number): Promise<void>;
  /**
   * Sets key only when it is absent (or expired): true when this call took it. The check and the
   * set are one step, so of two concurrent claims exactly one wins; the winner's promise resolves
   * once the key is durable.
   */
  claim(key: string, value: V, expiresAt: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  size(): number;
}

export interface RetentionPolicy {
  maxAgeMs: number;
  maxCount: number;
}

export interface PruneResult {
  archivedRemoved: number;
  keysExpired: number;
}

export interface Store {
  collection<T extends StoredRecord>(name: string): RecordCollection<T>;
  keys<V>(name: string): KeySpace<V>;
  /** Waits until every change made so far is durable. */
  flush(): Promise<void>;
  /** Drops expired keys and archived records past the retention policy. */
  prune(now: number): Promise<PruneResult>;
  /** True when the store can take writes. */
  isWritable(): Promise<boolean>;
  close(): Promise<void>;
}
