import type { KeySpace } from '../store.js';
import type { PgContext } from './pg-context.js';
import { toStoredText } from './stored-text.js';

/** A key space on expiring_keys (migrations/001-initial.sql). An expired key is absent to every call, pruned or not. */
export function pgKeySpace<V>(db: PgContext, space: string): KeySpace<V> {
  const write = <R>(key: string, work: () => Promise<R>) => db.order.run(`${space}\u0000${key}`, work);
  // json has no `undefined`: such a value comes back as null.
  const json = (value: V) => JSON.stringify(value ?? null);

  return {
    async get(key) {
      const { rows } = await db.query<{ value: V }>('SELECT value FROM expiring_keys WHERE space = $1 AND key = $2 AND expires_at > $3', [
        space,
        toStoredText(key),
        db.clock.now(),
      ]);
      return rows[0]?.value;
    },

    set(key, value, expiresAt) {
      const stored = toStoredText(key);
      return write(stored, async () => {
        await db.query(
          `INSERT INTO expiring_keys (space, key, value, expires_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
          [space, stored, json(value), expiresAt],
        );
      });
    },

    claim(key, value, expiresAt) {
      const stored = toStoredText(key);
      return write(stored, async () => {
        // One statement: of two replicas inserting at once, the second waits for the first's
        // commit, then finds the key taken (and not expired): exactly one gets a row back.
        const r = await db.query(
          `INSERT INTO expiring_keys AS k (space, key, value, expires_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
           WHERE k.expires_at <= $5`,
          [space, stored, json(value), expiresAt, db.clock.now()],
        );
        return r.rowCount === 1;
      });
    },

    delete(key) {
      const stored = toStoredText(key);
      return write(stored, async () => {
        await db.query('DELETE FROM expiring_keys WHERE space = $1 AND key = $2', [space, stored]);
      });
    },

    async size() {
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::integer AS n FROM expiring_keys WHERE space = $1', [space]);
      return rows[0]?.n ?? 0;
    },
  };
}
