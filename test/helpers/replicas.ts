/**
 * Several service processes (src/main.ts children) on one PostgreSQL database, as a deployment
 * with replicas behind nginx runs them, and a look into the database to see which replica holds
 * what.
 */
import pg from 'pg';
import { spawnService, type ServiceProcess } from './service-process.js';

export interface Replica extends ServiceProcess {
  /** When the test saw the process exit (ms since epoch): after this, nothing it sent can still arrive. */
  exitedAt?: number;
}

/** Starts `n` replicas at the same moment (so they race their start-up: migrations, resume). */
export async function startReplicas(n: number, env: Record<string, string>): Promise<Replica[]> {
  const replicas = (await Promise.all(Array.from({ length: n }, () => spawnService(env)))) as Replica[];
  for (const r of replicas) r.child.once('exit', () => (r.exitedAt = Date.now()));
  return replicas;
}

/** SIGKILL, and the moment the exit was seen. */
export async function killReplica(r: Replica): Promise<number> {
  await r.kill('SIGKILL');
  r.exitedAt ??= Date.now();
  return r.exitedAt;
}

export async function query<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/** The pids of the replicas holding an advisory lock now (from application_name, `lark-bridge host:pid:random`). */
export async function advisoryLockHolders(url: string): Promise<number[]> {
  const rows = await query<{ name: string }>(
    url,
    `SELECT a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'lark-bridge %'`,
  );
  return rows.map((r) => Number(/:(\d+):[0-9a-f]+$/.exec(r.name)?.[1]));
}

/** Every doc of a collection, live and archived. */
export async function allDocs<T>(url: string, collection: string): Promise<Array<{ doc: T; live: boolean }>> {
  return query<{ doc: T; live: boolean }>(
    url,
    'SELECT doc, true AS live FROM live_records WHERE collection = $1 UNION ALL SELECT doc, false AS live FROM archived_records WHERE collection = $1',
    [collection],
  );
}
