import type { RecordCollection, StoredRecord } from '../store.js';
import type { PgContext } from './pg-context.js';
import { fromStoredText, toStoredText } from './stored-text.js';

type Doc<T> = { doc: T };

/** A collection on live_records and archived_records (migrations/001-initial.sql). Every call is one statement: atomic on its own. */
export function pgCollection<T extends StoredRecord>(db: PgContext, name: string): RecordCollection<T> {
  const write = <R>(id: string, work: () => Promise<R>) => db.order.run(`${name}:${id}`, work);
  const until = (leaseMs: number | undefined) => db.clock.now() + (leaseMs ?? db.leaseMs);

  const archiveSql = (guarded: boolean) => `
    WITH gone AS (DELETE FROM live_records WHERE collection = $1 AND id = $2${guarded ? ' AND lease_owner = $5' : ''} RETURNING 1)
    INSERT INTO archived_records AS a (collection, id, doc, archived_at)
    ${guarded ? 'SELECT $1::text, $2::text, $3::json, $4::bigint FROM gone' : 'VALUES ($1, $2, $3, $4)'}
    ON CONFLICT (collection, id) DO UPDATE SET doc = excluded.doc, archived_at = excluded.archived_at, seq = excluded.seq`;

  return {
    async get(id) {
      const { rows } = await db.query<Doc<T>>(
        `SELECT doc FROM (
           SELECT doc, 0 AS rank FROM live_records WHERE collection = $1 AND id = $2
           UNION ALL
           SELECT doc, 1 AS rank FROM archived_records WHERE collection = $1 AND id = $2
         ) copies ORDER BY rank LIMIT 1`,
        [name, toStoredText(id)],
      );
      return rows[0]?.doc;
    },

    async live() {
      const { rows } = await db.query<Doc<T>>('SELECT doc FROM live_records WHERE collection = $1 ORDER BY seq', [name]);
      return rows.map((r) => r.doc);
    },

    async liveWhere(field, value) {
      // String fields only, as the journal store's index: a number 1 is not "1".
      const { rows } = await db.query<Doc<T>>(`SELECT doc FROM live_records WHERE collection = $1 AND json_typeof(doc->$2) = 'string' AND doc->>$2 = $3`, [name, field, value]);
      return rows.map((r) => r.doc);
    },

    put(record) {
      const id = toStoredText(record.id);
      const json = JSON.stringify(record);
      return write(id, async () => {
        await db.query(
          `INSERT INTO live_records (collection, id, doc, lease_owner, lease_until) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (collection, id) DO UPDATE SET doc = excluded.doc`,
          [name, id, json, db.owner, until(undefined)],
        );
      });
    },

    archive(record) {
      const id = toStoredText(record.id);
      const json = JSON.stringify(record);
      return write(id, async () => {
        await db.query(archiveSql(false), [name, id, json, db.clock.now()]);
      });
    },

    remove(id) {
      const stored = toStoredText(id);
      return write(stored, async () => {
        await db.query('DELETE FROM live_records WHERE collection = $1 AND id = $2', [name, stored]);
      });
    },

    async archivedCount() {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::integer AS n FROM archived_records WHERE collection = $1', [name]);
      return rows[0]?.n ?? 0;
    },

    async claimStale(limit, leaseMs) {
      if (limit <= 0) return [];
      const now = db.clock.now();
      // SKIP LOCKED: a record another replica is claiming (or writing) right now is left to it.
      const { rows } = await db.query<Doc<T> & { seq: string }>(
        `UPDATE live_records AS r SET lease_owner = $2, lease_until = $3
         FROM (SELECT id FROM live_records WHERE collection = $1 AND lease_until <= $4
               ORDER BY seq LIMIT $5 FOR UPDATE SKIP LOCKED) AS stale
         WHERE r.collection = $1 AND r.id = stale.id
         RETURNING r.doc, r.seq`,
        [name, db.owner, now + (leaseMs ?? db.leaseMs), now, limit],
      );
      return rows.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1)).map((r) => r.doc);
    },

    async renew(ids, leaseMs) {
      if (!ids.length) return [];
      const stored = new Map(ids.map((id) => [toStoredText(id), id]));
      const { rows } = await db.query<{ id: string }>(
        'UPDATE live_records SET lease_until = $4 WHERE collection = $1 AND id = ANY($2::text[]) AND lease_owner = $3 RETURNING id',
        [name, [...stored.keys()], db.owner, until(leaseMs)],
      );
      return rows.map((r) => stored.get(r.id) ?? fromStoredText(r.id));
    },

    async release(ids) {
      if (!ids.length) return;
      await db.query('UPDATE live_records SET lease_owner = NULL, lease_until = 0 WHERE collection = $1 AND id = ANY($2::text[]) AND lease_owner = $3', [
        name,
        ids.map(toStoredText),
        db.owner,
      ]);
    },

    putIfLeased(record) {
      const id = toStoredText(record.id);
      const json = JSON.stringify(record);
      return write(id, async () => {
        const r = await db.query('UPDATE live_records SET doc = $3 WHERE collection = $1 AND id = $2 AND lease_owner = $4', [name, id, json, db.owner]);
        return r.rowCount === 1;
      });
    },

    archiveIfLeased(record) {
      const id = toStoredText(record.id);
      const json = JSON.stringify(record);
      return write(id, async () => {
        const r = await db.query(archiveSql(true), [name, id, json, db.clock.now(), db.owner]);
        return r.rowCount === 1;
      });
    },
  };
}
