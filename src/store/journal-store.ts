import type { Low } from 'lowdb';
import type { Clock } from '../clock.js';
import { archiveChange, deleteKeyChange, noChange, putChange, removeChange, setKeyChange } from './change.js';
import { compact } from './compaction.js';
import type { DataDirLock } from './data-dir-lock.js';
import type { FileOps } from './file-ops.js';
import { textFrame } from './frame.js';
import type { Journal } from './journal.js';
import type { SnapshotDoc } from './snapshot-file.js';
import { LocalLeases, LocalLocks } from './local-coordination.js';
import type { KeyEntry, StoreState } from './store-state.js';
import { DEFAULT_LEASE_MS, newStoreOwner } from './store-owner.js';
import type { KeySpace, PruneResult, RecordCollection, RetentionPolicy, Store, StoredRecord } from './store.js';

export interface StoreLog {
  warn(message: string): void;
  info(message: string): void;
}

export interface JournalStore extends Store {
  /** Runs a compaction now (tests; the store runs its own by journal size and age). */
  compact(): Promise<void>;
  /** Drops every file handle without writing anything, as a crash would (tests). */
  abandon(): void;
  /** Commits and bytes appended to the journal since start. */
  readonly journalStats: { commits: number; bytes: number };
}

export interface JournalStoreParts {
  ops: FileOps;
  dir: string;
  clock: Clock;
  log: StoreLog;
  state: StoreState;
  journal: Journal;
  db: Low<SnapshotDoc | null>;
  lock: DataDirLock;
  retention: Record<string, RetentionPolicy>;
  defaultRetention: RetentionPolicy;
  compactAtBytes: number;
  compactEveryMs: number;
  /** Size of the snapshot the store started from. */
  snapshotBytes: number;
  /** Lease a new live record starts with, and the default of claimStale/renew. */
  leaseMs?: number;
}

const COLLECTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const COMPACTION_RETRY_MS = 60_000;

/** The Store on top of a journal: changes are applied in memory and appended; reads never touch the journal. */
export function createJournalStore(p: JournalStoreParts): JournalStore {
  const { state, journal, clock, log } = p;
  const collections = new Map<string, RecordCollection<StoredRecord>>();
  const keySpaces = new Map<string, KeySpace<unknown>>();
  const owner = newStoreOwner();
  const locks = new LocalLocks();
  // Compaction and retention both touch segment files: one at a time.
  let maintenance: Promise<unknown> = Promise.resolve();
  let compacting: Promise<void> | null = null;
  let lastCompaction = clock.now();
  let closed = false;
  // A compaction rewrites the live set and the keys: waiting until the journal is twice that
  // size keeps its cost per change a bounded fraction of the change, however large they grow.
  const thresholdFor = (snapshotBytes: number) => Math.max(p.compactAtBytes, 2 * snapshotBytes);
  let compactAt = thresholdFor(p.snapshotBytes);
  let retryAt = 0;

  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const run = maintenance.then(work, work);
    maintenance = run.catch(() => undefined);
    return run;
  };

  function runCompaction(): Promise<void> {
    compacting ??= serially(() => compact({ ops: p.ops, dir: p.dir, state, journal, db: p.db, now: () => clock.now() }))
      .then(
        (snapshotBytes) => {
          lastCompaction = clock.now();
          compactAt = thresholdFor(snapshotBytes);
        },
        (err: unknown) => {
          retryAt = clock.now() + COMPACTION_RETRY_MS; // a full or failing disk: not again on every commit
          throw err;
        },
      )
      .finally(() => {
        compacting = null;
      });
    return compacting;
  }

  function compactInBackground(): void {
    const due = () => !compacting && !closed && clock.now() >= retryAt;
    if (!due()) return;
    // Off the request path: the caller's commit does not wait for it.
    setImmediate(() => {
      if (!due()) return;
      runCompaction().catch((err: unknown) => log.warn(`compaction failed, the journal keeps every change; retrying in a minute: ${(err as Error).message}`));
    });
  }

  const ageTimer = setInterval(
    () => {
      if (journal.bytesSinceRotation > 0 && clock.now() - lastCompaction >= p.compactEveryMs) compactInBackground();
    },
    Math.min(p.compactEveryMs, 60_000),
  );
  ageTimer.unref();

  function commit(change: string): Promise<void> {
    const done = journal.append(textFrame(change));
    if (journal.bytesSinceRotation >= compactAt) compactInBackground();
    return done;
  }

  function collection<T extends StoredRecord>(name: string): RecordCollection<T> {
    if (!COLLECTION_NAME.test(name)) throw new Error(`collection name "${name}" must be 1-64 letters, digits, - or _`);
    let c = collections.get(name);
    if (!c) {
      const live = state.liveMap(name);
      const leases = new LocalLeases(owner, clock, p.leaseMs ?? DEFAULT_LEASE_MS);
      const put = (record: StoredRecord) => {
        const json = JSON.stringify(record);
        if (!live.has(record.id)) leases.started(record.id);
        live.set(record.id, record);
        return commit(putChange(name, json));
      };
      const archive = (record: StoredRecord) => {
        const json = JSON.stringify(record);
        const at = clock.now();
        live.delete(record.id);
        leases.ended(record.id);
        const done = commit(archiveChange(name, at, json));
        state.archive(name).addRecent({ id: record.id, at, json, seq: journal.lastSeq });
        return done;
      };
      c = {
        async get(id) {
          return live.get(id) ?? state.archives.get(name)?.get(id);
        },
        live: async () => [...live.values()],
        liveWhere: async (field, value) => live.where(field, value),
        put,
        archive,
        remove(id) {
          live.delete(id);
          leases.ended(id);
          return commit(removeChange(name, id));
        },
        archivedCount: async () => state.archives.get(name)?.count ?? 0,
        claimStale: async (limit, leaseMs) => leases.claimStale(live.values(), limit, leaseMs),
        renew: async (ids, leaseMs) => leases.renew(ids.filter((id) => live.has(id)), leaseMs),
        release: async (ids) => leases.release(ids),
        async putIfLeased(record) {
          if (!live.has(record.id) || !leases.holds(record.id)) return false;
          await put(record);
          return true;
        },
        async archiveIfLeased(record) {
          if (!live.has(record.id) || !leases.holds(record.id)) return false;
          await archive(record);
          return true;
        },
      };
      collections.set(name, c);
    }
    return c as unknown as RecordCollection<T>;
  }

  function keys<V>(name: string): KeySpace<V> {
    let k = keySpaces.get(name);
    if (!k) {
      const space = state.keySpace(name);
      const current = (key: string): KeyEntry | undefined => {
        const entry = space.get(key);
        return entry && entry.exp > clock.now() ? entry : undefined;
      };
      k = {
        async get(key) {
          return current(key)?.v;
        },
        set(key, value, expiresAt) {
          space.set(key, { v: value, exp: expiresAt });
          return commit(setKeyChange(name, key, value, expiresAt));
        },
        async claim(key, value, expiresAt) {
          // Check and set in one synchronous step: a concurrent claim sees this one's entry.
          if (current(key)) return false;
          const entry: KeyEntry = { v: value, exp: expiresAt };
          space.set(key, entry);
          try {
            await commit(setKeyChange(name, key, value, expiresAt));
          } catch (err) {
            if (space.get(key) === entry) space.delete(key); // given back: a retry may take it
            throw err;
          }
          return true;
        },
        delete(key) {
          space.delete(key);
          return commit(deleteKeyChange(name, key));
        },
        size: async () => space.size,
      };
      keySpaces.set(name, k);
    }
    return k as KeySpace<V>;
  }

  const store: JournalStore = {
    owner,
    collection,
    keys,
    flush: () => journal.idle(),

    async prune(now) {
      const result: PruneResult = { archivedRemoved: 0, keysExpired: 0 };
      for (const space of state.keys.values()) {
        for (const [key, entry] of space) {
          if (entry.exp <= now) {
            space.delete(key); // the snapshot leaves it out at the next compaction
            result.keysExpired++;
          }
        }
      }
      await serially(async () => {
        for (const [name, archive] of state.archives) result.archivedRemoved += await archive.prune(now, p.retention[name] ?? p.defaultRetention);
      });
      return result;
    },

    async isWritable() {
      if (closed) return false;
      // After a failed commit, a tiny commit proves the disk is back (and clears the error).
      if (!journal.lastError) return true;
      try {
        await commit(noChange());
        return true;
      } catch {
        return false;
      }
    },

    // One process per data directory (its lock): a lock only has this process to exclude.
    tryLock: async (name) => (closed ? undefined : locks.tryLock(name)),

    compact: () => runCompaction(),

    async close() {
      if (closed) return;
      closed = true;
      clearInterval(ageTimer);
      locks.dropAll();
      await compacting?.catch(() => undefined);
      await maintenance;
      await journal.close();
      await p.lock.release();
    },

    abandon() {
      closed = true;
      locks.dropAll();
      clearInterval(ageTimer);
      journal.abandon();
    },

    get journalStats() {
      return { ...journal.stats };
    },
  };
  return store;
}
