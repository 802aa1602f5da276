import { readFile } from 'node:fs/promises';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { StoreRefused } from '../store-errors.js';

export type DatabaseSsl = 'disable' | 'require' | 'verify-full';

/** How to reach the database (DATABASE_* variables, src/config.ts). */
export interface DatabaseConnection {
  /** postgres://user:password@host:port/database — never logged (the password); see whereIs(). */
  url: string;
  /** Connections in this process's pool (default 10). */
  poolMax?: number;
  /** The server cancels a statement running longer (default 10 s). */
  statementTimeoutMs?: number;
  /** Giving up on a new connection after this long (default 5 s). */
  connectTimeoutMs?: number;
  /** TLS: disable, require (encrypted, certificate not checked) or verify-full (checked, host name too). Unset: as the URL's sslmode says. */
  ssl?: DatabaseSsl;
  /** CA bundle (PEM) for verify-full; unset: the system's CAs. */
  caFile?: string;
}

/** host:port/database of a URL, without user or password: what messages may show. */
export function whereIs(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return '(unparsable DATABASE_URL)';
  }
}

async function tlsOptions(c: DatabaseConnection): Promise<boolean | ConnectionOptions | undefined> {
  if (c.ssl === undefined) return undefined;
  if (c.ssl === 'disable') return false;
  if (c.ssl === 'require') return { rejectUnauthorized: false }; // as libpq's sslmode=require: encrypted, not authenticated
  let ca: string | undefined;
  if (c.caFile) {
    try {
      ca = await readFile(c.caFile, 'utf8');
    } catch (err) {
      throw new StoreRefused(`DATABASE_CA_FILE ${c.caFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): point it at the PEM file of the CA that signed the server's certificate`);
    }
  }
  return { rejectUnauthorized: true, ...(ca ? { ca } : {}) };
}

/** The pool's settings. Each replica's connections carry its owner id as application_name (pg_stat_activity shows who is who). */
export async function poolConfig(c: DatabaseConnection, applicationName: string): Promise<pg.PoolConfig> {
  const statementTimeoutMs = c.statementTimeoutMs ?? 10_000;
  const ssl = await tlsOptions(c);
  return {
    connectionString: c.url,
    max: c.poolMax ?? 10,
    connectionTimeoutMillis: c.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeoutMs,
    // The server cancels at statement_timeout; this is for a server that stopped answering at all.
    query_timeout: statementTimeoutMs + 5_000,
    keepAlive: true,
    application_name: applicationName.slice(0, 63),
    ...(ssl === undefined ? {} : { ssl }),
  };
}
