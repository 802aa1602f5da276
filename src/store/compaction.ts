import { join } from 'node:path';
import type { Low } from 'lowdb';
import type { Frontier } from './archive.js';
import type { FileOps } from './file-ops.js';
import { journalFileName, journalGenerations, type Journal } from './journal.js';
import { SNAPSHOT_FILE, type SnapshotDoc } from './snapshot-file.js';
import type { StoreState } from './store-state.js';
import type { StoredRecord } from './store.js';

export interface CompactionContext {
  ops: FileOps;
  dir: string;
  state: StoreState;
  journal: Journal;
  db: Low<SnapshotDoc | null>;
  now: () => number;
}

/**
 * Compaction: a new journal generation starts (changes keep flowing there, nobody waits), the
 * records archived before that point are appended to segment files and synced, then the live
 * records and unexpired keys are written as the new snapshot (atomically) and the older journal
 * files are deleted. Start-up is then snapshot + the new generation only.
 *
 * The state is read after the switch, so it may already hold some changes of the new
 * generation: replaying them again at start changes nothing (each change sets or drops one
 * thing whole). A crash anywhere in here leaves the previous snapshot and every journal file
 * it needs; segment bytes written past the previous snapshot's frontier are cut at start.
 */
/** Returns the size of the snapshot written. */
export async function compact(ctx: CompactionContext): Promise<number> {
  const { ops, dir, state, journal, db } = ctx;
  const { gen, cutSeq } = await journal.rotate();
  for (const archive of state.archives.values()) await archive.moveToSegments(cutSeq);

  const now = ctx.now();
  const archive: Record<string, Frontier> = Object.create(null);
  for (const [name, a] of state.archives) archive[name] = a.frontier();
  const records: Record<string, StoredRecord[]> = Object.create(null);
  for (const [name, live] of state.live) if (live.size) records[name] = [...live.values()];
  const keys: SnapshotDoc['keys'] = Object.create(null);
  for (const [name, space] of state.keys) {
    const list: SnapshotDoc['keys'][string] = [];
    // Expiry happens here: an expired key is left out of the snapshot and dropped from memory.
    for (const [key, entry] of space) {
      if (entry.exp <= now) space.delete(key);
      else list.push([key, entry.v, entry.exp]);
    }
    if (list.length) keys[name] = list;
  }
  db.data = { format: 'lark-bridge-store', version: 2, journal: gen, writtenAt: new Date(now).toISOString(), archive, records, keys };
  await db.write();
  for (const old of journalGenerations(await ops.list(dir))) if (old < gen) await ops.remove(join(dir, journalFileName(old)));
  return (await ops.size(join(dir, SNAPSHOT_FILE))) ?? 0;
}
