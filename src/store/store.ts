/**
 * Persistence as the rest of the code sees it. Two implementations (open-store.ts chooses):
 * the embedded journal store on DATA_DIR (one process), and PostgreSQL when DATABASE_URL is set
 * (src/store/pg/: several replicas share one database).
 *
 * Contract: a promise returned by a mutating call resolves only once the change is durable
 * (committed), so a caller that awaits it may acknowledge the change to a client. Changes to one
 * record (or one key) apply in the order they were called; changes to different records may
 * commit in any order, so await the one you rely on (or flush()). Reads and counts are async:
 * with several replicas the truth is in the database, not in this process's memory.
 *
 * Several replicas coordinate through three primitives, which the embedded store implements
 * trivially for its one process:
 * - leases on live records (RecordCollection.claimStale / renew / release / putIfLeased /
 *   archiveIfLeased): which replica works on a record now;
 * - named locks (Store.tryLock): one replica at a time for a poller tick, a run's steps, retention;
 * - claims of keys (KeySpace.claim): "only once" (event ids, idempotency keys, seen items).
 * When the store cannot be reached (the database is down), calls reject with `Unavailable`
 * (src/errors.ts, HTTP 503): nothing was acknowledged that is not committed.
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
  /**
   * The live records whose string field `field` equals `value`, in no set order: without reading
   * the whole live set (an index kept beside it; on PostgreSQL, a query).
   */
  liveWhere(field: keyof T & string, value: string): Promise<T[]>;
  /**
   * Inserts or replaces a live record. A record that was not live starts leased to this store's
   * owner (Store.owner) for the store's lease time: its creator works on it first, and other
   * replicas claim it only once that lease has expired. Replacing a live record keeps its lease.
   */
  put(record: T): Promise<void>;
  /** Moves a finished record out of the live set into the archive (a later put brings it back to live). Its lease ends. */
  archive(record: T): Promise<void>;
  /** Drops a live record (used to undo an insert that could not be made durable). */
  remove(id: string): Promise<void>;
  /** How many records are archived (distinct ids; a record archived twice counts once). */
  archivedCount(): Promise<number>;

  /**
   * Takes up to `limit` live records whose lease has expired (or was released), oldest first, and
   * leases them to this store's owner for `leaseMs` (default: the store's lease time). Two
   * replicas calling it at once never get the same record (PostgreSQL: FOR UPDATE SKIP LOCKED).
   * This is how work left by a replica that died (or by the previous run of this process) is
   * picked up.
   */
  claimStale(limit: number, leaseMs?: number): Promise<T[]>;
  /**
   * Extends the leases this owner holds on `ids` to now + `leaseMs`; answers the ids still held.
   * An id missing from the answer was taken by another replica (its lease had expired), archived
   * or removed: stop working on it. A lease that expired but was not taken is still held.
   */
  renew(ids: readonly string[], leaseMs?: number): Promise<string[]>;
  /** Gives up this owner's leases on `ids` (a graceful stop): another replica may claim them at once. */
  release(ids: readonly string[]): Promise<void>;
  /**
   * Replaces a live record only while this owner holds its lease: false, and nothing written,
   * when another replica took it over (or it is no longer live). A replica that lost a lease
   * (paused too long) cannot overwrite the new holder's progress.
   */
  putIfLeased(record: T): Promise<boolean>;
  /** archive(), only while this owner holds the record's lease: false, and nothing written, otherwise. */
  archiveIfLeased(record: T): Promise<boolean>;
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
  /** How many keys are held (an expired key counts until a prune drops it). */
  size(): Promise<number>;
}

export interface RetentionPolicy {
  maxAgeMs: number;
  maxCount: number;
}

export interface PruneResult {
  archivedRemoved: number;
  keysExpired: number;
}

/** A named lock this process holds (Store.tryLock). */
export interface HeldLock {
  readonly name: string;
  /**
   * Aborted when the lock is lost without release() (PostgreSQL: the connection holding it
   * dropped, so another replica may take it now). Work guarded by the lock should stop, or at
   * least not commit side effects, once it fires.
   */
  readonly signal: AbortSignal;
  /** Lets the lock go (idempotent). */
  release(): Promise<void>;
}

export interface Store {
  /** Who this process is to the other replicas: the owner of the leases it takes. Unique per open store. */
  readonly owner: string;
  collection<T extends StoredRecord>(name: string): RecordCollection<T>;
  keys<V>(name: string): KeySpace<V>;
  /** Waits until every change made so far is durable. */
  flush(): Promise<void>;
  /** Drops expired keys and archived records past the retention policy (on one replica at a time: a replica that finds another one pruning returns zeros). */
  prune(now: number): Promise<PruneResult>;
  /** True when the store can take writes (a cheap probe). */
  isWritable(): Promise<boolean>;
  /**
   * Takes the lock `name` if no one holds it (in this process or another replica), without
   * waiting: the handle, or undefined when it is held. "One replica at a time": a poller tick,
   * a run's steps, retention. PostgreSQL: a session advisory lock on one dedicated connection,
   * released by the server when this process dies.
   */
  tryLock(name: string): Promise<HeldLock | undefined>;
  close(): Promise<void>;
}
