import { basename, dirname, join } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import type { Frontier } from './archive.js';
import type { FileOps } from './file-ops.js';
import { StoreRefused } from './store-errors.js';
import type { StoredRecord } from './store.js';

export const SNAPSHOT_FILE = 'snapshot.json';

/**
 * The lowdb document: the live records and unexpired keys as of a compaction, the first journal
 * generation to replay on top of it, and how far each collection's archive segments are durable.
 * Collections and key spaces hold arrays, so no client-supplied id is ever an object key.
 */
export interface SnapshotDoc {
  format: 'lark-bridge-store';
  version: 2;
  journal: number;
  writtenAt: string;
  archive: Record<string, Frontier>;
  records: Record<string, StoredRecord[]>;
  keys: Record<string, Array<[key: string, value: unknown, expiresAt: number]>>;
}

const CHUNK_CHARS = 256 * 1024;

function damaged(path: string, why: string): StoreRefused {
  return new StoreRefused(
    `${path} is damaged (${why}): restore it from a backup, or move it aside to start without the live jobs, runs and keys it holds (archived history is kept)`,
  );
}

const isObject = (v: unknown): v is object => typeof v === 'object' && v !== null;

function check(doc: unknown, path: string): SnapshotDoc {
  const d = doc as Partial<SnapshotDoc> | null;
  if (!isObject(d) || d.format !== 'lark-bridge-store') throw damaged(path, 'not a lark-bridge snapshot');
  if (d.version !== 2) throw damaged(path, `snapshot version ${String(d.version)} is not one this version reads`);
  // null is an object to typeof: a snapshot with "records": null would pass and fail later, naming nothing.
  if (!Number.isInteger(d.journal) || !isObject(d.archive) || !isObject(d.records) || !isObject(d.keys)) {
    throw damaged(path, 'fields are missing');
  }
  for (const [name, list] of Object.entries(d.records)) {
    if (!Array.isArray(list) || !list.every((r) => isObject(r) && typeof (r as StoredRecord).id === 'string')) {
      throw damaged(path, `records of "${name}" are not a list of records`);
    }
  }
  for (const [name, list] of Object.entries(d.keys)) {
    if (!Array.isArray(list) || !list.every((k) => Array.isArray(k) && typeof k[0] === 'string' && typeof k[2] === 'number')) {
      throw damaged(path, `keys of "${name}" are not a list of keys`);
    }
  }
  for (const f of Object.values(d.archive)) {
    if (!isObject(f) || !Number.isInteger(f.seq) || !Number.isInteger(f.bytes)) throw damaged(path, 'archive positions are not numbers');
  }
  return d as SnapshotDoc;
}

/**
 * lowdb adapter for the snapshot. Reading refuses a damaged file (never starts empty in its
 * place). Writing streams the document to a temp file in chunks, yielding between them so
 * requests keep being served, then fsync, rename over the old one and fsync the directory: a
 * crash leaves the old snapshot or the new one, never half of one.
 */
class SnapshotAdapter implements Adapter<SnapshotDoc | null> {
  constructor(
    private readonly ops: FileOps,
    private readonly path: string,
  ) {}

  async read(): Promise<SnapshotDoc | null> {
    const buf = await this.ops.readFile(this.path);
    if (!buf) return null;
    let doc: unknown;
    try {
      doc = JSON.parse(buf.toString('utf8'));
    } catch (err) {
      throw damaged(this.path, buf.length === 0 ? 'the file is empty' : `not valid JSON: ${(err as Error).message}`);
    }
    return check(doc, this.path);
  }

  async write(doc: SnapshotDoc | null): Promise<void> {
    if (!doc) return;
    const dir = dirname(this.path);
    const tmp = join(dir, `.${basename(this.path)}.tmp`);
    await this.ops.remove(tmp);
    const file = await this.ops.create(tmp);
    try {
      let pos = 0;
      let parts: string[] = [];
      let chars = 0;
      const flush = async () => {
        const buf = Buffer.from(parts.join(''), 'utf8');
        parts = [];
        chars = 0;
        await file.write(buf, pos);
        pos += buf.length;
      };
      const push = async (text: string) => {
        parts.push(text);
        chars += text.length;
        if (chars >= CHUNK_CHARS) await flush();
      };
      const q = JSON.stringify;
      await push(`{"format":${q(doc.format)},"version":${doc.version},"journal":${doc.journal},"writtenAt":${q(doc.writtenAt)},"archive":${q(doc.archive)},"records":{`);
      await pushLists(doc.records, push);
      await push('},"keys":{');
      await pushLists(doc.keys, push);
      await push('}}\n');
      await flush();
      await file.sync();
    } finally {
      await file.close();
    }
    await this.ops.rename(tmp, this.path);
    await this.ops.syncDir(dir);
  }
}

async function pushLists(lists: Record<string, unknown[]>, push: (text: string) => Promise<void>): Promise<void> {
  let firstList = true;
  for (const [name, list] of Object.entries(lists)) {
    await push(`${firstList ? '' : ','}${JSON.stringify(name)}:[`);
    firstList = false;
    for (let i = 0; i < list.length; i++) await push(`${i ? ',' : ''}${JSON.stringify(list[i])}`);
    await push(']');
  }
}

export function snapshotDb(ops: FileOps, dir: string): Low<SnapshotDoc | null> {
  return new Low<SnapshotDoc | null>(new SnapshotAdapter(ops, join(dir, SNAPSHOT_FILE)), null);
}
