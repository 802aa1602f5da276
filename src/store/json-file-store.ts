import { access, constants, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Low } from 'lowdb';
import type { Clock } from '../clock.js';
import { ArchiveSegments, type SegmentLimits } from './archive-segments.js';
import { AtomicJsonFile } from './atomic-json-file.js';
import { BatchedWriter } from './batched-writer.js';
import type { KeySpace, PruneResult, RecordCollection, RetentionPolicy, Store, StoredRecord } from './store.js';

/** The small document rewritten on every change: live records and expiring keys only. */
interface LiveDoc {
  version: 1;
  records: Record<string, Record<string, StoredRecord>>;
  keys: Record<string, Record<string, { v: unknown; exp: number }>>;
}

export interface JsonFileStoreOptions {
  dir: string;
  clock: Clock;
  /** Retention per collection name; collections not named use `defaultRetention`. */
  retention?: Record<string, RetentionPolicy>;
  defaultRetention?: RetentionPolicy;
  segment?: Partial<SegmentLimits>;
}

const DAY = 24 * 60 * 60 * 1000;

export async function openJsonFileStore(options: JsonFileStoreOptions): Promise<Store> {
  const { dir, clock } = options;
  await mkdir(dir, { recursive: true });
  const db = new Low<LiveDoc>(new AtomicJsonFile(join(dir, 'live.json')), { version: 1, records: {}, keys: {} });
  await db.read();
  // Client-supplied ids index these maps: no prototype, so "__proto__" or "constructor" is just a key.
  db.data.records = nullProtoMaps(db.data.records);
  db.data.keys = nullProtoMaps(db.data.keys);
  const writer = new BatchedWriter(() => db.write());
  const limits: SegmentLimits = { maxRecords: 200, maxBytes: 512 * 1024, ...options.segment };
  const archives = new Map<string, ArchiveSegments>();
  const loading = new Map<string, Promise<ArchiveSegments>>();
  const collections = new Map<string, RecordCollection<StoredRecord>>();
  const keySpaces = new Map<string, KeySpace<unknown>>();
  const defaultRetention = options.defaultRetention ?? { maxAgeMs: 7 * DAY, maxCount: 100_000 };

  // Archives are scanned up front so that get() and archivedCount() are synchronous-cheap.
  const archiveDir = join(dir, 'archive');
  const known = new Set([...Object.keys(db.data.records), ...(await readdir(archiveDir).catch(() => []))]);
  for (const name of known) archives.set(name, await ArchiveSegments.load(join(archiveDir, name), limits));

  // A crash between "written to the archive" and "removed from live" leaves the same record in
  // both: the live copy goes. But a record brought back to live on purpose after it was archived
  // (a Retry, a late event) is newer than its archived copy: that one stays.
  let healed = false;
  for (const [name, archive] of archives) {
    const live = db.data.records[name] ?? {};
    for (const id of Object.keys(live)) {
      if (!archive.has(id)) continue;
      const archived = await archive.get(id);
      if (archived && !isNewer(live[id]!, archived)) {
        delete live[id];
        healed = true;
      }
    }
  }
  if (healed) await writer.commit();

  /** The collection's archive, loaded once even when many callers ask in the same tick. */
  function archiveFor(name: string): Promise<ArchiveSegments> {
    const ready = archives.get(name);
    if (ready) return Promise.resolve(ready);
    let pending = loading.get(name);
    if (!pending) {
      pending = ArchiveSegments.load(join(archiveDir, name), limits).then((a) => {
        archives.set(name, a);
        loading.delete(name);
        return a;
      });
      loading.set(name, pending);
    }
    return pending;
  }

  function liveMap(name: string): Record<string, StoredRecord> {
    return (db.data.records[name] ??= Object.create(null) as Record<string, StoredRecord>);
  }

  const store: Store = {
    collection<T extends StoredRecord>(name: string): RecordCollection<T> {
      let c = collections.get(name);
      if (!c) {
        c = {
          async get(id) {
            const live = liveMap(name)[id];
            if (live) return live;
            return (await archiveFor(name)).get(id);
          },
          live: async () => Object.values(liveMap(name)),
          put(record) {
            liveMap(name)[record.id] = record;
            return writer.commit();
          },
          async archive(record) {
            // Archive first, then drop from live: a crash in between leaves a duplicate that the
            // next start heals, never a gap.
            await (await archiveFor(name)).add(record, clock.now());
            delete liveMap(name)[record.id];
            await writer.commit();
          },
          remove(id) {
            delete liveMap(name)[id];
            return writer.commit();
          },
          archivedCount: () => archives.get(name)?.count ?? 0,
        };
        collections.set(name, c);
      }
      return c as unknown as RecordCollection<T>;
    },

    keys<V>(name: string): KeySpace<V> {
      let k = keySpaces.get(name);
      if (!k) {
        const space = () => (db.data.keys[name] ??= Object.create(null) as Record<string, { v: unknown; exp: number }>);
        const current = (key: string) => {
          const entry = space()[key];
          return entry && entry.exp > clock.now() ? entry : undefined;
        };
        k = {
          async get(key) {
            return current(key)?.v;
          },
          set(key, value, expiresAt) {
            space()[key] = { v: value, exp: expiresAt };
            return writer.commit();
          },
          async claim(key, value, expiresAt) {
            // Check and set in one synchronous step: a concurrent claim sees this one's entry.
            if (current(key)) return false;
            space()[key] = { v: value, exp: expiresAt };
            try {
              await writer.commit();
            } catch (err) {
              if (space()[key]?.v === value) delete space()[key];
              throw err;
            }
            return true;
          },
          delete(key) {
            delete space()[key];
            return writer.commit();
          },
          size: () => Object.keys(space()).length,
        };
        keySpaces.set(name, k);
      }
      return k as KeySpace<V>;
    },

    async flush() {
      await writer.idle();
      await Promise.all([...archives.values()].map((a) => a.flush()));
    },

    async prune(now) {
      const result: PruneResult = { archivedRemoved: 0, keysExpired: 0 };
      for (const space of Object.values(db.data.keys)) {
        for (const [key, entry] of Object.entries(space)) {
          if (entry.exp <= now) {
            delete space[key];
            result.keysExpired++;
          }
        }
      }
      if (result.keysExpired) await writer.commit();
      for (const [name, archive] of archives) {
        const policy = options.retention?.[name] ?? defaultRetention;
        result.archivedRemoved += await archive.prune(now, policy);
      }
      return result;
    },

    async isWritable() {
      if (writer.lastError) return false;
      try {
        await access(dir, constants.W_OK);
        return true;
      } catch {
        return false;
      }
    },

    async close() {
      await store.flush();
    },
  };
  return store;
}

function nullProtoMaps<V>(outer: Record<string, Record<string, V>> | undefined): Record<string, Record<string, V>> {
  const out = Object.create(null) as Record<string, Record<string, V>>;
  for (const [name, inner] of Object.entries(outer ?? {})) out[name] = Object.assign(Object.create(null) as Record<string, V>, inner);
  return out;
}

/** True when a carries a later updatedAt than b (records without one are never newer). */
function isNewer(a: StoredRecord, b: StoredRecord): boolean {
  return typeof a.updatedAt === 'string' && typeof b.updatedAt === 'string' && a.updatedAt > b.updatedAt;
}
