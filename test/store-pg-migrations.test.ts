/**
 * Schema migrations on PostgreSQL: replicas starting together migrate once; a database migrated
 * by a newer (or different) build, or one that cannot be used, refuses start with one line.
 */
import { createServer } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, MIGRATIONS_TABLE, type Migration } from '../src/store/pg/migrate.js';
import { openPgStore, type PgStore } from '../src/store/pg/pg-store.js';
import { StoreRefused } from '../src/store/store-errors.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { runServiceExpectingExit } from './helpers/service-process.js';
import { fakeClock } from './helpers/store-clock.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const quiet = { warn: () => undefined, info: () => undefined };

async function sql<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

async function refusal(open: Promise<unknown>): Promise<string> {
  const err = await open.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreRefused);
  const message = (err as Error).message;
  expect(message).not.toContain('\n'); // one line for the operator
  return message;
}

describe.skipIf(postgresSkipReason() !== undefined)('PostgreSQL schema migrations', () => {
  let cluster: PostgresCluster;
  let shipped: Migration[];
  beforeAll(async () => {
    cluster = await startPostgres();
    shipped = await loadMigrations();
  }, 60_000);
  afterAll(() => cluster?.dispose());

  const open = (url: string, migrations?: Migration[]) => openPgStore({ url, clock: fakeClock(), log: quiet, migrations });

  it('migrates once when several replicas start together on an empty database', async () => {
    const url = await cluster.createDatabase('race');
    const stores: PgStore[] = await Promise.all(Array.from({ length: 4 }, () => open(url)));
    try {
      const applied = stores.map((s) => s.migrationsApplied);
      expect(applied.filter((a) => a.length > 0)).toEqual([shipped.map((m) => m.version)]); // one replica applied them all
      expect(await sql(url, `SELECT version, name FROM ${MIGRATIONS_TABLE} ORDER BY version`)).toEqual(shipped.map((m) => ({ version: m.version, name: m.name })));
      await stores[0]!.collection('jobs').put({ id: 'works' });
      expect(await stores[3]!.collection('jobs').get('works')).toEqual({ id: 'works' });
    } finally {
      for (const s of stores) await s.close();
    }
    const again = await open(url);
    expect(again.migrationsApplied).toEqual([]);
    await again.close();
  });

  it('applies a new migration on the next start, and rolls back one that fails', async () => {
    const url = await cluster.createDatabase('upgrade');
    await (await open(url)).close();
    const failing: Migration = { version: shipped.length + 1, name: `${String(shipped.length + 1).padStart(3, '0')}-broken.sql`, sql: 'CREATE TABLE half_done (x integer); SELECT * FROM no_such_table;' };
    const message = await refusal(open(url, [...shipped, failing]));
    expect(message).toMatch(/migration \d{3}-broken\.sql failed, nothing of it was applied: relation "no_such_table" does not exist/);
    expect(await sql(url, "SELECT to_regclass('half_done') AS t")).toEqual([{ t: null }]);
    expect(await sql(url, `SELECT max(version) AS v FROM ${MIGRATIONS_TABLE}`)).toEqual([{ v: shipped.length }]);

    const next: Migration = { ...failing, name: failing.name.replace('broken', 'add-notes'), sql: 'CREATE TABLE notes (id text PRIMARY KEY)' };
    const store = await open(url, [...shipped, next]);
    expect(store.migrationsApplied).toEqual([next.version]);
    await store.close();
    expect(await sql(url, "SELECT to_regclass('notes')::text AS t")).toEqual([{ t: 'notes' }]);
  });

  it('refuses a database migrated by a newer or a different build, with one line saying what to do', async () => {
    const url = await cluster.createDatabase('newer');
    await (await open(url)).close();
    await sql(url, `INSERT INTO ${MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)`, [shipped.length + 1, '999-from-the-future.sql']);
    expect(await refusal(open(url))).toMatch(
      new RegExp(`^the database schema is at version ${shipped.length + 1} \\(999-from-the-future\\.sql\\), newer than this lark-bridge knows \\(up to ${shipped.length}, .*\\): run the lark-bridge release that migrated it`),
    );
    // Nothing was changed by the refused start.
    expect((await sql(url, `SELECT count(*)::integer AS n FROM ${MIGRATIONS_TABLE}`))[0]).toEqual({ n: shipped.length + 1 });

    const other = await cluster.createDatabase('other_build');
    await (await open(other)).close();
    await sql(other, `UPDATE ${MIGRATIONS_TABLE} SET name = '001-forked.sql' WHERE version = 1`);
    expect(await refusal(open(other))).toMatch(/has migration 1 "001-forked\.sql" where this lark-bridge has "001-initial\.sql": it was migrated by a different build/);
  });

  it('refuses a database that is not UTF8, or does not exist, without showing the password', async () => {
    await sql(cluster.url(), "CREATE DATABASE latin TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'");
    expect(await refusal(open(cluster.url('latin')))).toMatch(/uses encoding SQL_ASCII; lark-bridge needs UTF8/);
    const missing = `postgres://postgres:sekrit-password@127.0.0.1:${cluster.port}/no_such_db`;
    const message = await refusal(open(missing));
    expect(message).toMatch(new RegExp(`^cannot use the database at 127\\.0\\.0\\.1:${cluster.port}/no_such_db \\(database "no_such_db" does not exist\\)`));
    expect(message).not.toContain('sekrit');
  });

  it('stops the service with exit code 2 and one line when the database is newer or unreachable', async () => {
    const url = await cluster.createDatabase('service_newer');
    await (await open(url)).close();
    await sql(url, `INSERT INTO ${MIGRATIONS_TABLE} (version, name) VALUES (999, '999-from-the-future.sql')`);
    const dir = await tempDir('lark-bridge-pg-service-');
    try {
      const newer = await runServiceExpectingExit({ DATABASE_URL: url, DATA_DIR: dir, FLOWS_DIR: dir, LOG_LEVEL: 'silent' });
      expect(newer.code).toBe(2);
      expect(newer.output.trim()).toMatch(/^lark-bridge: cannot start, the database schema is at version 999 \(999-from-the-future\.sql\), newer than this lark-bridge knows/);
      expect(newer.output.trim().split('\n')).toHaveLength(1);

      const closedPort = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const port = (s.address() as { port: number }).port;
          s.close(() => resolve(port));
        });
      });
      const down = await runServiceExpectingExit({ DATABASE_URL: `postgres://postgres:sekrit@127.0.0.1:${closedPort}/x`, DATA_DIR: dir, FLOWS_DIR: dir, LOG_LEVEL: 'silent' });
      expect(down.code).toBe(2);
      expect(down.output).toMatch(new RegExp(`cannot start, cannot use the database at 127\\.0\\.0\\.1:${closedPort}/x \\(connect ECONNREFUSED`));
      expect(down.output).not.toContain('sekrit');
    } finally {
      await removeDir(dir);
    }
  });
});
