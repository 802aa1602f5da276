/**
 * DATABASE_SSL against a server that only accepts TLS: verify-full checks the certificate (and
 * its host name) against DATABASE_CA_FILE, require encrypts without checking, disable is refused.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgStore, type PgStoreOptions } from '../src/store/pg/pg-store.js';
import { StoreRefused } from '../src/store/store-errors.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { fakeClock } from './helpers/store-clock.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const run = promisify(execFile);
const quiet = { warn: () => undefined, info: () => undefined };

async function selfSigned(dir: string, name: string): Promise<{ cert: string; key: string; certFile: string }> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile]);
  return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8'), certFile };
}

describe.skipIf(postgresSkipReason() !== undefined)('TLS to PostgreSQL (DATABASE_SSL)', () => {
  let cluster: PostgresCluster;
  let dir: string;
  let serverCert: string;
  let strangerCert: string;
  let url: string;
  beforeAll(async () => {
    dir = await tempDir('lark-bridge-pg-tls-');
    const server = await selfSigned(dir, 'server');
    serverCert = server.certFile;
    strangerCert = (await selfSigned(dir, 'stranger')).certFile;
    cluster = await startPostgres({ tls: server });
    url = await cluster.createDatabase('tls');
  }, 60_000);
  afterAll(async () => {
    await cluster?.dispose();
    await removeDir(dir);
  });

  const open = (o: Partial<PgStoreOptions>) => openPgStore({ url, clock: fakeClock(), log: quiet, ...o });
  const refusal = (o: Partial<PgStoreOptions>) =>
    open(o).then(
      async (s) => {
        await s.close();
        return undefined;
      },
      (e: unknown) => e,
    );

  /** Whether the store's own connections are encrypted, as the server sees them. */
  async function encrypted(applicationName: string): Promise<boolean[]> {
    const admin = new pg.Client({ connectionString: url, ssl: { rejectUnauthorized: false } });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ ssl: boolean }>('SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1', [applicationName]);
      return rows.map((r) => r.ssl);
    } finally {
      await admin.end();
    }
  }

  it('connects with verify-full and the CA that signed the server certificate', async () => {
    const store = await open({ ssl: 'verify-full', caFile: serverCert });
    await store.collection('jobs').put({ id: 'over-tls' });
    expect(await store.collection('jobs').get('over-tls')).toEqual({ id: 'over-tls' });
    const lock = await store.tryLock('tls-lock'); // the lock connection too
    const seen = await encrypted(store.applicationName);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every(Boolean)).toBe(true);
    await lock!.release();
    await store.close();
  });

  it('refuses a server certificate that the given CA (or the system CAs) did not sign', async () => {
    const stranger = await refusal({ ssl: 'verify-full', caFile: strangerCert });
    expect(stranger).toBeInstanceOf(StoreRefused);
    expect((stranger as Error).message).toMatch(/^cannot use the database at 127\.0\.0\.1:\d+\/tls_\w+ \((self[- ]signed certificate|unable to verify)/);
    const systemCas = await refusal({ ssl: 'verify-full' });
    expect(systemCas).toBeInstanceOf(StoreRefused);
    const missing = await refusal({ ssl: 'verify-full', caFile: join(dir, 'absent.pem') });
    expect((missing as Error).message).toMatch(/^DATABASE_CA_FILE .*absent\.pem cannot be read \(ENOENT\)/);
  });

  it('encrypts without checking with require, and cannot connect with disable', async () => {
    const store = await open({ ssl: 'require' });
    expect((await encrypted(store.applicationName)).every(Boolean)).toBe(true);
    await store.close();
    const plain = await refusal({ ssl: 'disable' });
    expect(plain).toBeInstanceOf(StoreRefused);
    expect((plain as Error).message).toMatch(/no pg_hba\.conf entry .* no encryption/);
  });
});
