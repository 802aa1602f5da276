/** The DATABASE_* variables: checked at start, never echoing the URL (it holds the password). */
import { describe, expect, it } from 'vitest';
import { ConfigError, describeFeatures, loadConfig } from '../src/config.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('DATABASE_* configuration', () => {
  it('uses the embedded store without DATABASE_URL, and PostgreSQL with the documented defaults with it', () => {
    expect(loadConfig({}).database).toBeUndefined();
    expect(describeFeatures(loadConfig({}))).toContain('Store: embedded journal in ./data (one process; set DATABASE_URL for several replicas)');
    const c = loadConfig({ DATABASE_URL: 'postgres://bridge:pw@db.internal:5433/lark' });
    expect(c.database).toEqual({ url: 'postgres://bridge:pw@db.internal:5433/lark', poolMax: 10, statementTimeoutMs: 10_000, connectTimeoutMs: 5_000, ssl: undefined, caFile: undefined, leaseMs: 30_000 });
    const tuned = loadConfig({
      DATABASE_URL: 'postgresql://bridge@db.internal/lark',
      DATABASE_POOL_MAX: '25',
      DATABASE_STATEMENT_TIMEOUT_MS: '2500',
      DATABASE_CONNECT_TIMEOUT_MS: '800',
      DATABASE_SSL: 'verify-full',
      DATABASE_CA_FILE: '/etc/ssl/db-ca.pem',
      DATABASE_LEASE_MS: '60000',
    });
    expect(tuned.database).toMatchObject({ poolMax: 25, statementTimeoutMs: 2500, connectTimeoutMs: 800, ssl: 'verify-full', caFile: '/etc/ssl/db-ca.pem', leaseMs: 60_000 });
  });

  it('names a bad DATABASE_URL without printing it', () => {
    for (const url of ['mysql://root:hunter2@db/x', 'not a url hunter2', 'postgres://hunter2@/nohost']) {
      const p = problems({ DATABASE_URL: url });
      expect(p).toEqual(['DATABASE_URL: expected postgres://user:password@host:port/database (the value is not shown: it may hold a password)']);
      expect(p.join('\n')).not.toContain('hunter2');
    }
  });

  it('refuses TLS set in two places, a CA without verify-full, and TLS settings without a database', () => {
    expect(problems({ DATABASE_URL: 'postgres://u:p@h/db?sslmode=require', DATABASE_SSL: 'verify-full' })).toEqual([
      'DATABASE_SSL: DATABASE_URL sets TLS too (sslmode): set it in one place',
    ]);
    expect(problems({ DATABASE_URL: 'postgres://u:p@h/db', DATABASE_SSL: 'require', DATABASE_CA_FILE: '/ca.pem' })).toEqual(['DATABASE_CA_FILE: only used with DATABASE_SSL=verify-full']);
    expect(problems({ DATABASE_SSL: 'require' })).toEqual(['DATABASE_SSL: only used with DATABASE_URL, which is not set']);
    expect(problems({ DATABASE_URL: 'postgres://u:p@h/db', DATABASE_SSL: 'prefer', DATABASE_POOL_MAX: '0' }).map((p) => p.split(':')[0]).sort()).toEqual(['DATABASE_POOL_MAX', 'DATABASE_SSL']);
    // The URL's own sslmode alone is fine: pg applies it.
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@h/db?sslmode=verify-full' }).database?.ssl).toBeUndefined();
  });

  it('says in the banner where the store is, without user or password, and warns about require', () => {
    const lines = describeFeatures(loadConfig({ DATABASE_URL: 'postgres://bridge:s3cret@db.internal:5433/lark', DATABASE_SSL: 'require' }));
    expect(lines).toContain('Store: PostgreSQL at db.internal:5433/lark (pool 10, TLS require), shared by every replica');
    expect(lines.join('\n')).toMatch(/WARNING DATABASE_SSL=require encrypts but does not check the server certificate/);
    expect(lines.join('\n')).not.toMatch(/s3cret|bridge@/);
  });
});
