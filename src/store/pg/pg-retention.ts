import type { PruneResult, RetentionPolicy } from '../store.js';
import type { PgContext } from './pg-context.js';

// Rows deleted per statement: a first prune of a large backlog runs as many short statements
// (each within the statement timeout, none holding locks for long), not one huge one.
const BATCH = 5000;

type Query = PgContext['query'];

/** Drops expired keys, then per collection the archived records past the age and beyond the count (oldest first). */
export async function prunePg(query: Query, now: number, retentionOf: (collection: string) => RetentionPolicy): Promise<PruneResult> {
  const result: PruneResult = { archivedRemoved: 0, keysExpired: 0 };
  result.keysExpired = await inBatches(() =>
    query(
      `WITH old AS (SELECT space, key FROM expiring_keys WHERE expires_at <= $1 LIMIT ${BATCH})
       DELETE FROM expiring_keys k USING old WHERE k.space = old.space AND k.key = old.key AND k.expires_at <= $1`,
      [now],
    ),
  );
  for (const collection of await archivedCollections(query)) {
    const policy = retentionOf(collection);
    const cutoff = now - policy.maxAgeMs;
    // The re-check in each DELETE spares a record archived again meanwhile (it is new again).
    result.archivedRemoved += await inBatches(() =>
      query(
        `WITH old AS (SELECT id FROM archived_records WHERE collection = $1 AND archived_at < $2 ORDER BY archived_at, seq LIMIT ${BATCH})
         DELETE FROM archived_records a USING old WHERE a.collection = $1 AND a.id = old.id AND a.archived_at < $2`,
        [collection, cutoff],
      ),
    );
    // The newest record beyond maxCount; it and everything older go. One walk down the index.
    const { rows } = await query<{ archived_at: string; seq: string }>(
      'SELECT archived_at, seq FROM archived_records WHERE collection = $1 ORDER BY archived_at DESC, seq DESC OFFSET $2 LIMIT 1',
      [collection, policy.maxCount],
    );
    const edge = rows[0];
    if (!edge) continue;
    result.archivedRemoved += await inBatches(() =>
      query(
        `WITH old AS (SELECT id FROM archived_records WHERE collection = $1 AND (archived_at, seq) <= ($2, $3) ORDER BY archived_at, seq LIMIT ${BATCH})
         DELETE FROM archived_records a USING old WHERE a.collection = $1 AND a.id = old.id AND (a.archived_at, a.seq) <= ($2, $3)`,
        [collection, edge.archived_at, edge.seq],
      ),
    );
  }
  return result;
}

async function inBatches(deleteSome: () => Promise<{ rowCount: number | null }>): Promise<number> {
  let total = 0;
  for (;;) {
    const n = (await deleteSome()).rowCount ?? 0;
    total += n;
    if (n < BATCH) return total;
  }
}

/** The collections that have archived records: a skip scan of the primary key, not a scan of every row. */
async function archivedCollections(query: Query): Promise<string[]> {
  const { rows } = await query<{ collection: string }>(
    `WITH RECURSIVE c AS (
       (SELECT collection FROM archived_records ORDER BY collection LIMIT 1)
       UNION ALL
       SELECT (SELECT a.collection FROM archived_records a WHERE a.collection > c.collection ORDER BY a.collection LIMIT 1) FROM c WHERE c.collection IS NOT NULL
     )
     SELECT collection FROM c WHERE collection IS NOT NULL`,
    [],
  );
  return rows.map((r) => r.collection);
}
