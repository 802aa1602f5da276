import { dirname, join, relative } from 'node:path';
import type { Low } from 'lowdb';
import { CollectionArchive, type SegmentLimits } from './archive.js';
import type { FileOps } from './file-ops.js';
import type { StoreLog } from './journal-store.js';
import { Journal, journalFileName, journalGenerations } from './journal.js';
import { SNAPSHOT_FILE, type SnapshotDoc } from './snapshot-file.js';
import { StoreRefused } from './store-errors.js';
import type { StoredRecord } from './store.js';

/** The v1 layout (json-file store): live.json plus archive/<collection>/<day>/<seq>.json. */
const V1_LIVE = 'live.json';
const V1_SEGMENT = /^\d+\.json$/;
const DAY_DIR = /^\d{4}-\d{2}-\d{2}$/;
export const V1_BACKUP_DIR = 'v1-store-backup';

interface V1Live {
  version: 1;
  records: Record<string, Record<string, StoredRecord>>;
  keys: Record<string, Record<string, { v: unknown; exp: number }>>;
}

interface V1Segment {
  collection: string;
  path: string;
  seq: number;
  lastAt: number;
  records: StoredRecord[];
}

export interface ImportContext {
  ops: FileOps;
  dir: string;
  limits: SegmentLimits;
  log: StoreLog;
  db: Low<SnapshotDoc | null>;
  now: number;
}

async function findV1Segments(ops: FileOps, archiveRoot: string): Promise<Array<{ collection: string; path: string; seq: number }>> {
  const found: Array<{ collection: string; path: string; seq: number }> = [];
  for (const collection of await ops.list(archiveRoot)) {
    for (const day of (await ops.list(join(archiveRoot, collection))).filter((d) => DAY_DIR.test(d))) {
      for (const name of (await ops.list(join(archiveRoot, collection, day))).filter((n) => V1_SEGMENT.test(n))) {
        found.push({ collection, path: join(archiveRoot, collection, day, name), seq: Number(name.slice(0, -5)) });
      }
    }
  }
  return found;
}

function parseLive(buf: Buffer, path: string): V1Live {
  const refuse = (why: string) =>
    new StoreRefused(`${path} (the store of the previous version) is damaged (${why}): restore it from a backup, or move it aside to start without the live jobs and keys it holds`);
  let doc: V1Live;
  try {
    doc = JSON.parse(buf.toString('utf8')) as V1Live;
  } catch (err) {
    throw refuse(buf.length === 0 ? 'the file is empty' : `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || typeof doc.records !== 'object' || typeof doc.keys !== 'object') throw refuse('records or keys are missing');
  return doc;
}

/** True when a carries a later updatedAt than b (records without one are never newer): the v1 rule. */
function isNewer(a: StoredRecord, b: StoredRecord): boolean {
  return typeof a.updatedAt === 'string' && typeof b.updatedAt === 'string' && a.updatedAt > b.updatedAt;
}

/**
 * Converts a data directory written by the v1 json-file store, once, losing nothing: archived
 * records go to append-only segments, live records and unexpired keys to the first snapshot.
 * The import is committed by the snapshot's rename; until then a crash leaves the v1 files as
 * they were and the next start imports again. The v1 files are then moved to v1-store-backup/.
 */
export async function importV1Store(ctx: ImportContext): Promise<void> {
  const { ops, dir, log } = ctx;
  const livePath = join(dir, V1_LIVE);
  const archiveRoot = join(dir, 'archive');
  const liveBuf = await ops.readFile(livePath);
  const segments = await findV1Segments(ops, archiveRoot);
  if (!liveBuf && segments.length === 0) return;
  if ((await ops.size(join(dir, SNAPSHOT_FILE))) === undefined) await convert(ctx, liveBuf, segments);
  const left = await findV1Segments(ops, archiveRoot); // a damaged one was renamed meanwhile
  await moveAside(ops, dir, [...(liveBuf ? [livePath] : []), ...left.map((s) => s.path)]);
  log.info(`the v1 store files (live.json, archive/**/*.json) were moved to ${join(dir, V1_BACKUP_DIR)}; delete that folder once you no longer need a way back to the previous version`);
}

async function convert(ctx: ImportContext, liveBuf: Buffer | undefined, found: Array<{ collection: string; path: string; seq: number }>): Promise<void> {
  const { ops, dir, limits, log, db, now } = ctx;
  const livePath = join(dir, V1_LIVE);
  const live: V1Live = liveBuf ? parseLive(liveBuf, livePath) : { version: 1, records: {}, keys: {} };
  if (!liveBuf) log.warn(`${livePath} is missing but v1 archive segments are there: importing the archive only, with NO live jobs, runs or keys; if this is not intended, stop now and restore live.json from a backup`);

  // Leftovers of an import cut short: the v1 files are still the truth, start over.
  for (const g of journalGenerations(await ops.list(dir))) await ops.remove(join(dir, journalFileName(g)));
  const segments: V1Segment[] = [];
  for (const f of found) {
    try {
      const doc = JSON.parse(((await ops.readFile(f.path)) ?? '').toString()) as { lastAt: number; records: StoredRecord[] };
      if (!Array.isArray(doc.records) || typeof doc.lastAt !== 'number') throw new Error('not a segment document');
      segments.push({ ...f, lastAt: doc.lastAt, records: doc.records });
    } catch (err) {
      await ops.rename(f.path, `${f.path}.damaged`);
      log.warn(`v1 archive segment ${f.path} is damaged (${(err as Error).message}); moved aside to ${f.path}.damaged; importing without its records`);
    }
  }
  // Oldest first by last write, as the v1 store ordered them: a later copy of an id wins.
  segments.sort((a, b) => a.lastAt - b.lastAt || a.seq - b.seq);

  const archives = new Map<string, CollectionArchive>();
  for (const name of new Set(segments.map((s) => s.collection))) {
    const collectionDir = join(dir, 'archive', name);
    for (const day of await ops.list(collectionDir)) {
      for (const file of await ops.list(join(collectionDir, day))) if (file.endsWith('.seg')) await ops.remove(join(collectionDir, day, file));
    }
    archives.set(name, CollectionArchive.empty(ops, collectionDir, limits));
  }
  let archived = 0;
  for (const s of segments) {
    for (const r of s.records) {
      archives.get(s.collection)!.addRecent({ id: r.id, at: s.lastAt, json: JSON.stringify(r), seq: 0 });
      archived++;
    }
  }

  const records: SnapshotDoc['records'] = Object.create(null);
  let liveCount = 0;
  for (const [name, byId] of Object.entries(live.records)) {
    const list: StoredRecord[] = [];
    for (const record of Object.values(byId)) {
      // v1 could leave a record in both live and archive (a crash between two writes): the
      // archived copy wins unless the live one is newer (brought back on purpose, a Retry).
      const archive = archives.get(name);
      const archivedCopy = archive?.has(record.id) ? await archive.get(record.id) : undefined;
      if (archivedCopy && !isNewer(record, archivedCopy)) continue;
      list.push(record);
    }
    liveCount += list.length;
    if (list.length) records[name] = list;
  }
  const keys: SnapshotDoc['keys'] = Object.create(null);
  let keyCount = 0;
  for (const [name, byKey] of Object.entries(live.keys)) {
    const list = Object.entries(byKey)
      .filter(([, e]) => e.exp > now)
      .map(([key, e]): [string, unknown, number] => [key, e.v, e.exp]);
    keyCount += list.length;
    if (list.length) keys[name] = list;
  }

  for (const a of archives.values()) await a.moveToSegments(0);
  const frontiers: SnapshotDoc['archive'] = Object.create(null);
  for (const [name, a] of archives) frontiers[name] = a.frontier();
  await (await Journal.open(ops, dir, 1, 0)).close();
  db.data = { format: 'lark-bridge-store', version: 2, journal: 1, writtenAt: new Date(now).toISOString(), archive: frontiers, records, keys };
  await db.write();
  log.info(`imported the v1 store in ${dir}: ${liveCount} live records, ${archived} archived records, ${keyCount} unexpired keys`);
}

async function moveAside(ops: FileOps, dir: string, paths: string[]): Promise<void> {
  const backup = join(dir, V1_BACKUP_DIR);
  for (const path of paths) {
    const to = join(backup, relative(dir, path));
    await ops.mkdir(dirname(to));
    await ops.rename(path, to);
  }
  await ops.syncDir(dir);
}
