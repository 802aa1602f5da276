import { readdir, readFile } from 'node:fs/promises';
import type pg from 'pg';
import { StoreRefused } from '../store-errors.js';
import { advisoryKey } from './advisory-key.js';

export interface Migration {
  version: number;
  /** The file name, e.g. 001-initial.sql: recorded with the version, so another build's migration is recognised. */
  name: string;
  sql: string;
}

const MIGRATION_FILE = /^(\d{3,})-[a-z0-9-]+\.sql$/;
export const MIGRATIONS_TABLE = 'lark_bridge_migrations';
// Every replica takes this lock before looking at the schema: two replicas starting at once migrate once.
const MIGRATION_LOCK = advisoryKey('lark-bridge migrations');

/** The migrations shipped with this code (src/store/pg/migrations/NNN-name.sql), by version. */
export async function loadMigrations(dir: URL = new URL('./migrations/', import.meta.url)): Promise<Migration[]> {
  const migrations: Migration[] = [];
  for (const name of (await readdir(dir)).sort()) {
    const m = MIGRATION_FILE.exec(name);
    if (!m) continue;
    migrations.push({ version: Number(m[1]), name, sql: await readFile(new URL(name, dir), 'utf8') });
  }
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migrations must be numbered 1, 2, 3... without gaps: ${m.name} is number ${i + 1}`);
  });
  return migrations;
}

/**
 * Brings the schema to the newest migration this code knows, under a session advisory lock (the
 * server drops it if this process dies mid-way); each migration commits with its version row, or
 * not at all. Refuses (StoreRefused) a database that a newer or different build has migrated.
 * Answers the versions this call applied.
 */
export async function migrate(pool: pg.Pool, migrations: Migration[], info: (message: string) => void): Promise<number[]> {
  const client = await pool.connect();
  let broken: unknown;
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const { rows } = await client.query<{ version: number; name: string }>(`SELECT version, name FROM ${MIGRATIONS_TABLE} ORDER BY version`);
      refuseForeignSchema(rows, migrations);
      const done = new Set(rows.map((r) => r.version));
      const applied: number[] = [];
      for (const m of migrations) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new StoreRefused(`database migration ${m.name} failed, nothing of it was applied: ${(err as Error).message}`);
        }
        applied.push(m.version);
        info(`database: applied migration ${m.name}`);
      }
      return applied;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch((err: unknown) => (broken = err));
    }
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}

function refuseForeignSchema(rows: { version: number; name: string }[], migrations: Migration[]): void {
  const latest = migrations.at(-1);
  const newest = rows.at(-1);
  if (newest && newest.version > (latest?.version ?? 0)) {
    throw new StoreRefused(
      `the database schema is at version ${newest.version} (${newest.name}), newer than this lark-bridge knows (up to ${latest?.version ?? 0}${latest ? `, ${latest.name}` : ''}): run the lark-bridge release that migrated it, or point DATABASE_URL at another database`,
    );
  }
  for (const row of rows) {
    const ours = migrations[row.version - 1];
    if (ours?.name !== row.name) {
      throw new StoreRefused(
        `the database has migration ${row.version} "${row.name}" where this lark-bridge has ${ours ? `"${ours.name}"` : 'none'}: it was migrated by a different build; run that build, or point DATABASE_URL at another database`,
      );
    }
  }
}
