import pg from 'pg';
import type { Clock } from '../../clock.js';
import { Unavailable } from '../../errors.js';
import type { StoreLog } from '../journal-store.js';
import { StoreRefused } from '../store-errors.js';
import { DEFAULT_LEASE_MS, newStoreOwner } from '../store-owner.js';
import type { KeySpace, RecordCollection, RetentionPolicy, Store, StoredRecord } from '../store.js';
import { KeyedOrder } from './keyed-order.js';
import { loadMigrations, migrate, type Migration } from './migrate.js';
import { pgCollection } from './pg-collection.js';
import { poolConfig, whereIs, type DatabaseConnection } from './pg-connection.js';
import type { PgContext } from './pg-context.js';
import { asStoreError, unavailableReason } from './pg-errors.js';
import { pgKeySpace } from './pg-keys.js';
import { AdvisoryLocks } from './pg-locks.js';
import { prunePg } from './pg-retention.js';

export interface PgStoreOptions extends DatabaseConnection {
  clock: Clock;
  log?: StoreLog;
  /** Retention per collection name; collections not named use `defaultRetention`. */
  retention?: Record<string, RetentionPolicy>;
  defaultRetention?: RetentionPolicy;
  /** Lease a new live record starts with, and the default of claimStale/renew (default 30 s). */
  leaseMs?: number;
  /** How often the connection holding named locks is probed while it holds some (default 5 s). */
  lockHeartbeatMs?: number;
  /** The migrations to bring the database to (tests pass their own; default: the shipped ones). */
  migrations?: Migration[];
}

export interface PgStore extends Store {
  /** The versions this open migrated the database to (empty when it was current). */
  readonly migrationsApplied: readonly number[];
  /** application_name of this store's connections (pg_stat_activity). */
  readonly applicationName: string;
  /** VACUUM ANALYZE of the store's tables: what the embedded store's compaction is to it (tests; autovacuum does it otherwise). */
  vacuum(): Promise<void>;
}

const DAY = 86_400_000;
const COLLECTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const OLDEST_SERVER = 120000; // PostgreSQL 12: the oldest release still supported when this was written

const stderrLog: StoreLog = {
  warn: (m) => process.stderr.write(`lark-bridge store: WARNING ${m}\n`),
  info: (m) => process.stderr.write(`lark-bridge store: ${m}\n`),
};

/**
 * Opens the store on PostgreSQL: checks the server (reachable, UTF8, version), migrates the
 * schema under an advisory lock, and answers a Store whose every mutating call is one committed
 * statement. Refuses to start (StoreRefused, one line) when the database cannot be used.
 */
export async function openPgStore(options: PgStoreOptions): Promise<PgStore> {
  const log = options.log ?? stderrLog;
  const where = whereIs(options.url);
  const owner = newStoreOwner();
  const applicationName = `lark-bridge ${owner}`;
  const config = await poolConfig(options, applicationName);
  const pool = new pg.Pool(config);
  // An idle connection that breaks (the server restarted) must not crash the process: the pool drops it and opens another.
  pool.on('error', (err) => log.warn(`database connection to ${where} dropped: ${err.message}`));
  try {
    await checkServer(pool, where);
    const migrations = options.migrations ?? (await loadMigrations());
    const applied = await migrate(pool, migrations, log.info);
    return createPgStore({ ...options, log, pool, owner, applicationName, applied, newLockClient: () => new pg.Client(config) });
  } catch (err) {
    await pool.end().catch(() => undefined);
    if (err instanceof StoreRefused) throw err;
    throw new StoreRefused(`cannot use the database at ${where} (${(err as Error).message}): check that PostgreSQL runs there and DATABASE_URL (user, password, database) and DATABASE_SSL are right`);
  }
}

async function checkServer(pool: pg.Pool, where: string): Promise<void> {
  const { rows } = await pool.query<{ version: number; encoding: string }>(
    "SELECT current_setting('server_version_num')::integer AS version, current_setting('server_encoding') AS encoding",
  );
  const server = rows[0]!;
  if (server.version < OLDEST_SERVER) {
    throw new StoreRefused(`the database at ${where} runs PostgreSQL ${Math.floor(server.version / 10000)}; lark-bridge needs PostgreSQL 12 or newer`);
  }
  // Ids and keys are Unicode; another encoding would refuse or mangle them.
  if (server.encoding !== 'UTF8') {
    throw new StoreRefused(`the database at ${where} uses encoding ${server.encoding}; lark-bridge needs UTF8: CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0`);
  }
}

interface PgStoreParts extends PgStoreOptions {
  log: StoreLog;
  pool: pg.Pool;
  owner: string;
  applicationName: string;
  applied: number[];
  newLockClient: () => pg.Client;
}

function createPgStore(p: PgStoreParts): PgStore {
  const { pool, log } = p;
  let closed = false;
  const order = new KeyedOrder();
  const db: PgContext = {
    owner: p.owner,
    clock: p.clock,
    leaseMs: p.leaseMs ?? DEFAULT_LEASE_MS,
    order,
    async query(sql, params) {
      if (closed) throw new Unavailable('the store is closed');
      try {
        return await pool.query(sql, params);
      } catch (err) {
        throw asStoreError(err);
      }
    },
  };
  const locks = new AdvisoryLocks(p.newLockClient, p.lockHeartbeatMs ?? 5_000, log.warn);
  const collections = new Map<string, RecordCollection<StoredRecord>>();
  const keySpaces = new Map<string, KeySpace<unknown>>();
  const defaultRetention = p.defaultRetention ?? { maxAgeMs: 7 * DAY, maxCount: 100_000 };

  return {
    owner: p.owner,
    migrationsApplied: p.applied,
    applicationName: p.applicationName,

    collection<T extends StoredRecord>(name: string): RecordCollection<T> {
      if (!COLLECTION_NAME.test(name)) throw new Error(`collection name "${name}" must be 1-64 letters, digits, - or _`);
      let c = collections.get(name);
      if (!c) collections.set(name, (c = pgCollection(db, name)));
      return c as unknown as RecordCollection<T>;
    },

    keys<V>(name: string): KeySpace<V> {
      let k = keySpaces.get(name);
      if (!k) keySpaces.set(name, (k = pgKeySpace(db, name)));
      return k as KeySpace<V>;
    },

    // Each write resolves once committed: waiting for those in flight is all a flush is.
    flush: () => order.idle(),

    async prune(now) {
      // One replica at a time; another one pruning now does the work for everyone.
      const lock = await locks.tryLock('lark-bridge retention');
      if (!lock) return { archivedRemoved: 0, keysExpired: 0 };
      try {
        return await prunePg(db.query, now, (name) => p.retention?.[name] ?? defaultRetention);
      } finally {
        await lock.release();
      }
    },

    async isWritable() {
      if (closed) return false;
      try {
        const { rows } = await pool.query<{ ok: boolean }>("SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off' AS ok");
        return rows[0]?.ok === true;
      } catch (err) {
        if (!unavailableReason(err)) log.warn(`database probe failed: ${(err as Error).message}`);
        return false;
      }
    },

    tryLock: (name) => locks.tryLock(name),

    async vacuum() {
      await db.query('VACUUM (ANALYZE) live_records, archived_records, expiring_keys', []);
    },

    async close() {
      if (closed) return;
      await order.idle();
      closed = true;
      await locks.close();
      await pool.end();
    },
  };
}
