/**
 * Two replicas on one PostgreSQL database: two Store instances, each with its own pool (and its
 * own owner id), as two service processes would have. What one replica takes, the other cannot.
 */
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openPgStore, type PgStore } from '../src/store/pg/pg-store.js';
import type { StoredRecord } from '../src/store/store.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { fakeClock, type FakeClock } from './helpers/store-clock.js';
import { waitFor } from './helpers/test-app.js';

interface Rec extends StoredRecord {
  n: number;
}

const DAY = 86_400_000;
const LEASE = 10_000;
const quiet = { warn: () => undefined, info: () => undefined };

describe.skipIf(postgresSkipReason() !== undefined)('two replicas on one PostgreSQL database', () => {
  let cluster: PostgresCluster;
  let url: string;
  let clock: FakeClock;
  const stores: PgStore[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  });

  /** Two replicas sharing the fake clock (their clocks agree, as NTP keeps them within milliseconds). */
  async function replicas(extra: { statementTimeoutMs?: number } = {}): Promise<[PgStore, PgStore]> {
    url = await cluster.createDatabase('replicas');
    clock = fakeClock();
    const open = () => openPgStore({ url, clock, log: quiet, leaseMs: LEASE, lockHeartbeatMs: 100, ...extra });
    const [a, b] = await Promise.all([open(), open()]);
    stores.push(a, b);
    return [a, b];
  }

  async function terminate(where: string, param: unknown): Promise<void> {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE ${where}`, [param]);
    } finally {
      await admin.end();
    }
  }

  it('lets exactly one replica win each key claimed by both at once', async () => {
    const [a, b] = await replicas();
    expect(a.owner).not.toBe(b.owner);
    const ka = a.keys<string>('lark-events');
    const kb = b.keys<string>('lark-events');
    const claims: Promise<boolean>[] = [];
    for (let i = 0; i < 200; i++) claims.push(ka.claim(`ev-${i}`, 'a', clock.now() + DAY), kb.claim(`ev-${i}`, 'b', clock.now() + DAY));
    const won = await Promise.all(claims);
    for (let i = 0; i < 200; i++) {
      expect(Number(won[2 * i]) + Number(won[2 * i + 1])).toBe(1);
      expect(await kb.get(`ev-${i}`)).toBe(won[2 * i] ? 'a' : 'b'); // both see the winner's value
    }
    // Both got some: the claims really raced.
    expect(won.filter((w, i) => w && i % 2 === 0).length).toBeGreaterThan(0);
    expect(won.filter((w, i) => w && i % 2 === 1).length).toBeGreaterThan(0);
  });

  it('hands each stale record to one replica only, skipping records being written, and none while its creator holds it', async () => {
    const [a, b] = await replicas({ statementTimeoutMs: 3000 });
    const ja = a.collection<Rec>('jobs');
    const jb = b.collection<Rec>('jobs');
    await Promise.all(Array.from({ length: 300 }, (_, i) => ja.put({ id: `job-${i}`, n: i })));
    expect(await jb.claimStale(1000)).toEqual([]); // a made them: a works on them
    clock.advance(LEASE + 1); // a died (or stalled) without renewing

    // Another session holds the oldest 50 rows (a replica writing them): claims pass them by
    // instead of waiting (a wait would end in the 3 s statement timeout, and fail the test).
    const writer = new pg.Client({ connectionString: url });
    await writer.connect();
    await writer.query('BEGIN');
    await writer.query("SELECT id FROM live_records WHERE collection = 'jobs' AND id = ANY($1::text[]) FOR UPDATE", [Array.from({ length: 50 }, (_, i) => `job-${i}`)]);
    const [fromA, fromB] = await Promise.all([ja.claimStale(100), jb.claimStale(100)]);
    await writer.query('COMMIT');
    await writer.end();
    const first = [...fromA, ...fromB].map((r) => r.id);
    expect(first).toHaveLength(200);
    expect(first.filter((id) => Number(id.slice(4)) < 50)).toEqual([]);

    const batches: Promise<Rec[]>[] = [];
    for (let i = 0; i < 10; i++) batches.push(ja.claimStale(10), jb.claimStale(10));
    const ids = [...first, ...(await Promise.all(batches)).flat().map((r) => r.id)];
    expect(new Set(ids).size).toBe(ids.length); // nobody got a record twice
    expect(ids.length).toBe(300); // and every record went to someone
    expect(await ja.claimStale(1000)).toEqual([]);
    expect(await jb.claimStale(1000)).toEqual([]);
  });

  it('fences a replica that lost its lease: the new holder writes, the old one cannot', async () => {
    const [a, b] = await replicas();
    const ja = a.collection<Rec>('jobs');
    const jb = b.collection<Rec>('jobs');
    await ja.put({ id: 'job', n: 1 });
    expect(await ja.putIfLeased({ id: 'job', n: 2 })).toBe(true);
    expect(await jb.putIfLeased({ id: 'job', n: 99 })).toBe(false);
    expect(await jb.renew(['job'])).toEqual([]);
    clock.advance(LEASE + 1);
    expect(await jb.claimStale(10)).toEqual([{ id: 'job', n: 2 }]);
    // a wakes up after a long pause: its lease is gone, and so is its right to write.
    expect(await ja.renew(['job'])).toEqual([]);
    expect(await ja.putIfLeased({ id: 'job', n: 3 })).toBe(false);
    expect(await ja.archiveIfLeased({ id: 'job', n: 3 })).toBe(false);
    expect(await jb.putIfLeased({ id: 'job', n: 4 })).toBe(true);
    expect(await jb.archiveIfLeased({ id: 'job', n: 5 })).toBe(true);
    expect(await ja.get('job')).toEqual({ id: 'job', n: 5 });
    expect(await ja.live()).toEqual([]);
    // A release hands it over at once, without waiting for the lease to run out.
    await jb.put({ id: 'handover', n: 1 });
    expect(await ja.claimStale(10)).toEqual([]);
    await jb.release(['handover']);
    expect(await ja.claimStale(10)).toEqual([{ id: 'handover', n: 1 }]);
  });

  it('gives a named lock to one replica; it is free again once its holder releases it or dies', async () => {
    const [a, b] = await replicas();
    const heldByA = await a.tryLock('poller:guance');
    expect(heldByA).toBeDefined();
    expect(await b.tryLock('poller:guance')).toBeUndefined();
    const both = await Promise.all([a.tryLock('run:42'), b.tryLock('run:42')]);
    expect(both.filter(Boolean)).toHaveLength(1);
    await heldByA!.release();
    const heldByB = await b.tryLock('poller:guance');
    expect(heldByB).toBeDefined();
    expect(await a.tryLock('poller:guance')).toBeUndefined();

    // b dies: PostgreSQL ends its session, and its locks with it. b's holder learns it lost the lock.
    await terminate('application_name = $1', b.applicationName);
    await waitFor(() => heldByB!.signal.aborted, 5_000);
    const taken = await waitFor(() => a.tryLock('poller:guance'), 5_000);
    expect(taken.name).toBe('poller:guance');
  });

  it('keeps one replica pruning at a time', async () => {
    const [a, b] = await replicas();
    for (let i = 0; i < 20; i++) await a.keys<number>('k').set(`old${i}`, i, clock.now() + 1000);
    clock.advance(2000);
    const retention = await a.tryLock('lark-bridge retention'); // a's prune is running
    expect(await b.prune(clock.now())).toEqual({ archivedRemoved: 0, keysExpired: 0 });
    expect(await b.keys('k').size()).toBe(20);
    await retention!.release();
    expect(await b.prune(clock.now())).toEqual({ archivedRemoved: 0, keysExpired: 20 });
  });
});
