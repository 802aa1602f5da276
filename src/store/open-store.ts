import { join } from 'node:path';
import type { Clock } from '../clock.js';
import { CollectionArchive, type SegmentLimits } from './archive.js';
import { decodeChange } from './change.js';
import { lockDataDir } from './data-dir-lock.js';
import { nodeFileOps, type FileOps } from './file-ops.js';
import { createJournalStore, type JournalStore, type StoreLog } from './journal-store.js';
import { Journal, journalFileName, journalGenerations, readJournal } from './journal.js';
import { importV1Store } from './legacy-import.js';
import { SNAPSHOT_FILE, snapshotDb, type SnapshotDoc } from './snapshot-file.js';
import { StoreRefused } from './store-errors.js';
import { StoreState } from './store-state.js';
import type { RetentionPolicy, Store } from './store.js';
import type { DatabaseConnection } from './pg/pg-connection.js';
import { openPgStore } from './pg/pg-store.js';

export interface JournalStoreOptions {
  dir: string;
  clock: Clock;
  /** Where warnings (cut journal tail, damaged segment, stale lock) and notices go; stderr by default. */
  log?: StoreLog;
  /** The disk; tests inject failures through it. */
  fileOps?: FileOps;
  /** Retention per collection name; collections not named use `defaultRetention`. */
  retention?: Record<string, RetentionPolicy>;
  defaultRetention?: RetentionPolicy;
  segment?: Partial<SegmentLimits>;
  /** Compact once the journal has grown by this many bytes (default 32 MiB), or by twice the snapshot if that is more... */
  compactAtBytes?: number;
  /** ...or when it holds changes older than this (default 15 minutes). */
  compactEveryMs?: number;
  /** Told the duration (s) and bytes of each group commit (metrics). */
  onCommit?: (seconds: number, bytes: number) => void;
  /** Lease a new live record starts with (default 30 s): see RecordCollection.claimStale. */
  leaseMs?: number;
}

const DAY = 24 * 60 * 60 * 1000;
const COLLECTION_DIR = /^[A-Za-z0-9_-]{1,64}$/;

const stderrLog: StoreLog = {
  warn: (m) => process.stderr.write(`lark-bridge store: WARNING ${m}\n`),
  info: (m) => process.stderr.write(`lark-bridge store: ${m}\n`),
};

async function prepareDir(ops: FileOps, dir: string): Promise<void> {
  try {
    await ops.mkdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new StoreRefused(`DATA_DIR ${dir} is not a directory: point DATA_DIR at a directory`);
    if (code === 'EACCES' || code === 'EROFS') throw new StoreRefused(`DATA_DIR ${dir} cannot be created or written (${code}): fix its permissions or point DATA_DIR elsewhere`);
    throw err;
  }
}

/**
 * Opens the store the configuration asks for: PostgreSQL when `database` is given (DATABASE_URL:
 * several replicas share it), else the embedded journal store on `dir` (DATA_DIR: one process).
 * Retention and lease settings apply to both.
 */
export async function openStore(options: JournalStoreOptions & { database?: DatabaseConnection }): Promise<Store> {
  const { database, ...journal } = options;
  if (!database) return openJournalStore(journal);
  return openPgStore({
    ...database,
    clock: journal.clock,
    log: journal.log,
    retention: journal.retention,
    defaultRetention: journal.defaultRetention,
    leaseMs: journal.leaseMs,
  });
}

/**
 * Opens the embedded store on DATA_DIR: lock, upgrade a v1 (json-file) directory if there is one,
 * read the snapshot, load the archive segments, replay the journal (cutting a torn tail), and
 * continue appending where the journal ends.
 */
export async function openJournalStore(options: JournalStoreOptions): Promise<JournalStore> {
  const { dir, clock } = options;
  const ops = options.fileOps ?? nodeFileOps;
  const log = options.log ?? stderrLog;
  const limits: SegmentLimits = { maxRecords: 10_000, maxBytes: 4 * 1024 * 1024, ...options.segment };
  await prepareDir(ops, dir);
  const lock = await lockDataDir(dir, log.warn);
  try {
    const db = snapshotDb(ops, dir);
    await ops.remove(join(dir, `.${SNAPSHOT_FILE}.tmp`)); // left by a compaction cut short
    await importV1Store({ ops, dir, limits, log, db, now: clock.now() });
    await db.read();
    const snapshot = db.data;
    let gens = journalGenerations(await ops.list(dir));
    if (!snapshot && gens.length) {
      throw new StoreRefused(
        `${join(dir, SNAPSHOT_FILE)} is missing but ${join(dir, journalFileName(gens[0]!))} is there: restore snapshot.json from a backup (the journal alone is not the data), or move the journal-*.log files aside to start without the live jobs, runs and keys`,
      );
    }

    const state = new StoreState(ops, join(dir, 'archive'), limits);
    for (const name of (await ops.list(join(dir, 'archive'))).filter((n) => COLLECTION_DIR.test(n))) {
      const frontier = snapshot ? (snapshot.archive[name] ?? { seq: 0, bytes: 0 }) : 'all';
      state.archives.set(name, await CollectionArchive.load(ops, join(dir, 'archive', name), limits, frontier, log.warn));
    }

    let first: SnapshotDoc;
    if (snapshot) {
      first = snapshot;
    } else {
      if ([...state.archives.values()].some((a) => a.hasSegments)) {
        log.warn(
          `${join(dir, SNAPSHOT_FILE)} and the journal are missing but archive segments are there: starting with NO live jobs, runs, idempotency keys or seen Lark events; if this is not a first start, stop now and restore snapshot.json and journal-*.log from a backup`,
        );
      }
      const archive = Object.create(null) as SnapshotDoc['archive'];
      for (const [name, a] of state.archives) archive[name] = a.frontier();
      first = { format: 'lark-bridge-store', version: 2, journal: 1, writtenAt: new Date(clock.now()).toISOString(), archive, records: {}, keys: {} };
      await (await Journal.open(ops, dir, 1, 0)).close();
      db.data = first;
      await db.write();
      gens = [1];
    }

    const now = clock.now();
    for (const [name, records] of Object.entries(first.records)) {
      const live = state.liveMap(name);
      for (const r of records) live.set(r.id, r);
    }
    for (const [name, list] of Object.entries(first.keys)) {
      const space = state.keySpace(name);
      for (const [key, v, exp] of list) if (exp > now) space.set(key, { v, exp });
    }

    const journal = await replayJournals(ops, dir, first, gens, state, log);
    journal.onCommit = options.onCommit;
    return createJournalStore({
      ops,
      dir,
      clock,
      log,
      state,
      journal,
      db,
      lock,
      retention: options.retention ?? {},
      defaultRetention: options.defaultRetention ?? { maxAgeMs: 7 * DAY, maxCount: 100_000 },
      compactAtBytes: options.compactAtBytes ?? 32 * 1024 * 1024,
      compactEveryMs: options.compactEveryMs ?? 15 * 60 * 1000,
      snapshotBytes: (await ops.size(join(dir, SNAPSHOT_FILE))) ?? 0,
      leaseMs: options.leaseMs,
    });
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/** Replays the journal generations the snapshot needs, in order; returns the journal opened for appending. */
async function replayJournals(ops: FileOps, dir: string, snapshot: SnapshotDoc, gens: number[], state: StoreState, log: StoreLog): Promise<Journal> {
  for (const g of gens) if (g < snapshot.journal) await ops.remove(join(dir, journalFileName(g))); // compaction finished but did not clean up
  const chain = gens.filter((g) => g >= snapshot.journal);
  if (chain[0] !== snapshot.journal) {
    log.warn(
      `${join(dir, journalFileName(snapshot.journal))} is missing: the changes made after ${snapshot.writtenAt} (the snapshot) are lost; if you have a backup of it, stop now and restore it`,
    );
  }
  for (let i = 1; i < chain.length; i++) {
    if (chain[i] !== chain[i - 1]! + 1) log.warn(`journal generations ${chain[i - 1]! + 1} to ${chain[i]! - 1} are missing in ${dir}: changes in them are lost`);
  }
  let end = 0;
  for (const g of chain) {
    const path = join(dir, journalFileName(g));
    const read = await readJournal(ops, path, (payload) => {
      const change = decodeChange(payload);
      if (!change) return false;
      state.apply(change);
      return true;
    });
    end = read.end;
    if (read.problem) {
      log.warn(
        `journal ${path}: cut at byte ${read.end} of ${read.size} because ${read.problem}; the changes after that point are dropped (a write cut short by a crash or power loss ends this way, and was never acknowledged)`,
      );
      const file = await ops.openExisting(path);
      await file.truncate(read.end).finally(() => file.close());
    }
  }
  return Journal.open(ops, dir, chain.at(-1) ?? snapshot.journal, chain.length ? end : 0);
}
