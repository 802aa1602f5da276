import type { Clock } from '../clock.js';
import type { KeySpace, PruneResult, RecordCollection, RetentionPolicy, Store, StoredRecord } from './store.js';

/** In-memory Store with the same semantics as the file store, for unit tests. */
export function createMemoryStore(clock: Clock, retention: RetentionPolicy = { maxAgeMs: 7 * 86_400_000, maxCount: 100_000 }): Store {
  const live = new Map<string, Map<string, StoredRecord>>();
  const archived = new Map<string, Map<string, { record: StoredRecord; at: number }>>();
  const keys = new Map<string, Map<string, { v: unknown; exp: number }>>();
  const of = <K, V>(m: Map<string, Map<K, V>>, name: string) => {
    let inner = m.get(name);
    if (!inner) m.set(name, (inner = new Map()));
    return inner;
  };
  const copy = <T>(v: T): T => structuredClone(v);

  return {
    collection<T extends StoredRecord>(name: string): RecordCollection<T> {
      return {
        async get(id) {
          const r = of(live, name).get(id) ?? of(archived, name).get(id)?.record;
          return r as T | undefined;
        },
        live: () => [...of(live, name).values()] as T[],
        async put(record) {
          of(live, name).set(record.id, record);
        },
        async archive(record) {
          of(archived, name).set(record.id, { record: copy(record), at: clock.now() });
          of(live, name).delete(record.id);
        },
        async remove(id) {
          of(live, name).delete(id);
        },
        archivedCount: () => of(archived, name).size,
      };
    },
    keys<V>(name: string): KeySpace<V> {
      const space = of(keys, name);
      return {
        get(key) {
          const e = space.get(key);
          return e && e.exp > clock.now() ? (e.v as V) : undefined;
        },
        async set(key, value, expiresAt) {
          space.set(key, { v: value, exp: expiresAt });
        },
        async delete(key) {
          space.delete(key);
        },
        size: () => space.size,
      };
    },
    async flush() {},
    async prune(now) {
      const result: PruneResult = { archivedRemoved: 0, keysExpired: 0 };
      for (const space of keys.values()) {
        for (const [k, e] of space) if (e.exp <= now) (space.delete(k), result.keysExpired++);
      }
      for (const coll of archived.values()) {
        const entries = [...coll.entries()].sort((a, b) => a[1].at - b[1].at);
        for (const [id, e] of entries) {
          if (e.at < now - retention.maxAgeMs || coll.size > retention.maxCount) {
            coll.delete(id);
            result.archivedRemoved++;
          }
        }
      }
      return result;
    },
    async isWritable() {
      return true;
    },
    async close() {},
  };
}
