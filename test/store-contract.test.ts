/**
 * The store contract: every Store implementation runs this suite unchanged, through a harness
 * that knows how to open it, crash it and tear a write. Add an implementation by adding one
 * `describeStoreContract(...)` call at the bottom (today: the journal store, and PostgreSQL on a
 * throwaway cluster).
 *
 * Changed for PostgreSQL (several replicas), not for the callers: archivedCount() and size() are
 * async, because with several replicas the count is in the database, not in this process's
 * memory; and "the live set in memory" is replaced by leases (claimStale...) and named locks.
 */
import { appendFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { putChange } from '../src/store/change.js';
import { textFrame } from '../src/store/frame.js';
import type { JournalStore } from '../src/store/journal-store.js';
import { journalFileName, journalGenerations } from '../src/store/journal.js';
import { openJournalStore } from '../src/store/open-store.js';
import { openPgStore, type PgStore } from '../src/store/pg/pg-store.js';
import { DEFAULT_LEASE_MS } from '../src/store/store-owner.js';
import type { RetentionPolicy, Store, StoredRecord } from '../src/store/store.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { fakeClock, type FakeClock } from './helpers/store-clock.js';
import { removeDir, tempDir } from './helpers/test-app.js';

export interface StoreHarness {
  /** Opens the store on the harness's place; called again, it reopens what is there. */
  open(o: { clock: Clock; retention?: RetentionPolicy }): Promise<Store>;
  /** The process died: nothing flushed, nothing closed. */
  crash(store: Store): Promise<void>;
  /** After a crash: a put of `record` was being written when the power went, and only part of it reached the disk. */
  tornPut(collection: string, record: StoredRecord & Record<string, unknown>): Promise<void>;
  /** Compaction, or what the implementation does instead. */
  maintain(store: Store): Promise<void>;
  dispose(): Promise<void>;
}

const DAY = 86_400_000;

interface Rec extends StoredRecord {
  n: number;
}

const PROTO_IDS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'prototype'];
const NON_ASCII_IDS = ['审批-42', '🚀✨-job', 'مرحبا-بالعالم', 'e\u0301-combining', 'ｆｕｌｌｗｉｄｔｈ', 'zero\u200bwidth', 'tab\tnew\nline', 'nul\u0000byte', '"quoted\\"'];

export function describeStoreContract(name: string, makeHarness: () => Promise<StoreHarness>): void {
  describe(`store contract: ${name}`, () => {
    let h: StoreHarness;
    let clock: FakeClock;
    beforeEach(async () => {
      h = await makeHarness();
      clock = fakeClock();
    });
    afterEach(async () => {
      await h.dispose();
    });

    const reopen = async (store: Store, retention?: RetentionPolicy) => {
      await h.crash(store);
      return h.open({ clock, retention });
    };

    it('has every awaited change after a crash: put, archive, remove, set, claim, delete', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      const keys = store.keys<string>('idempotency');
      await jobs.put({ id: 'a', n: 1 });
      await jobs.put({ id: 'b', n: 1 });
      await jobs.put({ id: 'a', n: 2 });
      await jobs.archive({ id: 'b', n: 3 });
      await jobs.put({ id: 'c', n: 1 });
      await jobs.remove('c');
      await keys.set('k1', 'v1', clock.now() + DAY);
      expect(await keys.claim('k2', 'v2', clock.now() + DAY)).toBe(true);
      await keys.set('k3', 'v3', clock.now() + DAY);
      await keys.delete('k3');

      const again = await reopen(store);
      const jobs2 = again.collection<Rec>('jobs');
      expect(await jobs2.live()).toEqual([{ id: 'a', n: 2 }]);
      expect(await jobs2.get('b')).toEqual({ id: 'b', n: 3 });
      expect(await jobs2.get('c')).toBeUndefined();
      expect(await jobs2.archivedCount()).toBe(1);
      const keys2 = again.keys<string>('idempotency');
      expect(await keys2.get('k1')).toBe('v1');
      expect(await keys2.get('k2')).toBe('v2');
      expect(await keys2.get('k3')).toBeUndefined();
      expect(await keys2.claim('k2', 'other', clock.now() + DAY)).toBe(false);
      await again.close();
    });

    it('replays a long history of changes to the same state, twice in a row', async () => {
      const store = await h.open({ clock });
      const model = new Map<string, Rec>();
      const archived = new Map<string, Rec>();
      const jobs = store.collection<Rec>('jobs');
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 400; i++) {
        const id = `r${i % 37}`;
        const rec = { id, n: i };
        if (i % 5 === 4) {
          model.delete(id);
          archived.set(id, rec);
          writes.push(jobs.archive(rec));
        } else if (i % 11 === 10) {
          model.delete(id);
          writes.push(jobs.remove(id));
        } else {
          model.set(id, rec);
          writes.push(jobs.put(rec));
        }
        if (i % 50 === 0) await Promise.all(writes.splice(0)); // several group commits
      }
      await Promise.all(writes);
      const expectState = async (s: Store) => {
        const c = s.collection<Rec>('jobs');
        expect(new Map((await c.live()).map((r) => [r.id, r]))).toEqual(model);
        for (const [id, rec] of archived) expect(await c.get(id)).toEqual(model.get(id) ?? rec);
        expect(await c.archivedCount()).toBe(archived.size);
      };
      await expectState(store);
      const once = await reopen(store);
      await expectState(once);
      const twice = await reopen(once);
      await expectState(twice);
      await twice.close();
    });

    it('starts after a torn write: the acknowledged changes are there, the torn one is not, and writing goes on', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      for (let i = 0; i < 5; i++) await jobs.put({ id: `ok${i}`, n: i });
      await store.keys<number>('lark-events').set('ev', 1, clock.now() + DAY);
      await h.crash(store);
      await h.tornPut('jobs', { id: 'torn', n: 99 });

      const again = await h.open({ clock });
      const jobs2 = again.collection<Rec>('jobs');
      expect((await jobs2.live()).map((r) => r.id).sort()).toEqual(['ok0', 'ok1', 'ok2', 'ok3', 'ok4']);
      expect(await jobs2.get('torn')).toBeUndefined();
      expect(await again.keys<number>('lark-events').get('ev')).toBe(1);
      expect(await again.isWritable()).toBe(true);
      await jobs2.put({ id: 'after', n: 1 });
      const third = await reopen(again);
      expect(await third.collection<Rec>('jobs').get('after')).toEqual({ id: 'after', n: 1 });
      expect(await third.collection<Rec>('jobs').get('ok4')).toEqual({ id: 'ok4', n: 4 });
      await third.close();
    });

    it('loses no write made while a compaction runs', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      const keys = store.keys<number>('k');
      for (let i = 0; i < 200; i++) await Promise.all([jobs.put({ id: `before${i}`, n: i }), i % 2 ? jobs.archive({ id: `before${i}`, n: -i }) : undefined]);
      const writes: Promise<unknown>[] = [];
      const compaction = h.maintain(store);
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 20; i++) {
          const id = `during${round}-${i}`;
          writes.push(jobs.put({ id, n: i }), keys.set(id, round, clock.now() + DAY));
          if (i % 3 === 0) writes.push(jobs.archive({ id: `before${round * 10 + i}`, n: 1000 + i }));
        }
        await new Promise((r) => setImmediate(r));
      }
      const second = h.maintain(store);
      await Promise.all([...writes, compaction, second]);
      for (let i = 0; i < 5; i++) writes.push(jobs.put({ id: `after${i}`, n: i }));
      await Promise.all(writes);

      const expected = new Map((await jobs.live()).map((r) => [r.id, r]));
      const archivedCount = await jobs.archivedCount();
      const again = await reopen(store);
      const jobs2 = again.collection<Rec>('jobs');
      expect(new Map((await jobs2.live()).map((r) => [r.id, r]))).toEqual(expected);
      expect(await jobs2.archivedCount()).toBe(archivedCount);
      expect(await jobs2.get('before30')).toEqual({ id: 'before30', n: 1000 }); // archived during the compaction
      expect(await jobs2.get('before1')).toEqual({ id: 'before1', n: -1 }); // archived before it
      expect(await again.keys<number>('k').get('during19-19')).toBe(19);
      expect(await again.keys('k').size()).toBe(400);
      await again.close();
    });

    it('never answers an expired key, lets it be claimed again, and drops it for good', async () => {
      const store = await h.open({ clock });
      const keys = store.keys<string>('lark-events');
      await keys.set('short', 'a', clock.now() + 1000);
      await keys.set('long', 'b', clock.now() + DAY);
      expect(await keys.get('short')).toBe('a');
      clock.advance(1001);
      expect(await keys.get('short')).toBeUndefined();
      const after = await reopen(store);
      const keys2 = after.keys<string>('lark-events');
      expect(await keys2.get('short')).toBeUndefined(); // not answered after a restart either
      expect(await keys2.get('long')).toBe('b');
      expect((await after.prune(clock.now())).keysExpired).toBe(1);
      await h.maintain(after);
      const third = await reopen(after);
      expect(await third.keys('lark-events').size()).toBe(1);
      expect(await third.keys<string>('lark-events').claim('short', 'c', clock.now() + 1000)).toBe(true);
      expect(await third.keys<string>('lark-events').get('short')).toBe('c');
      await third.close();
    });

    it('lets exactly one of many concurrent claims of a key win, durably', async () => {
      const store = await h.open({ clock });
      const keys = store.keys<number>('lark-events');
      const same = await Promise.all(Array.from({ length: 50 }, (_, i) => keys.claim('ev-1', i, clock.now() + DAY)));
      expect(same.filter(Boolean)).toHaveLength(1);
      const winner = same.indexOf(true);
      // Claims spread over several commits, some while the first commit is in flight.
      const spread: Promise<boolean>[] = [];
      for (let i = 0; i < 10; i++) {
        spread.push(keys.claim('ev-2', i, clock.now() + DAY), keys.claim(`ev-own-${i}`, i, clock.now() + DAY));
        await new Promise((r) => setImmediate(r));
      }
      const results = await Promise.all(spread);
      expect(results.filter((_, i) => i % 2 === 0).filter(Boolean)).toHaveLength(1);
      expect(results.filter((_, i) => i % 2 === 1).every(Boolean)).toBe(true);
      const again = await reopen(store);
      const keys2 = again.keys<number>('lark-events');
      expect(await keys2.get('ev-1')).toBe(winner);
      expect(await keys2.claim('ev-1', 99, clock.now() + DAY)).toBe(false);
      expect(await keys2.get('ev-own-7')).toBe(7);
      await again.close();
    });

    it('drops archived records past the retention age and beyond the count, and they stay gone', async () => {
      const retention = { maxAgeMs: 7 * DAY, maxCount: 10 };
      const store = await h.open({ clock, retention });
      const jobs = store.collection<Rec>('jobs');
      for (let i = 0; i < 5; i++) await jobs.archive({ id: `ancient${i}`, n: i });
      clock.advance(10 * DAY);
      for (let day = 0; day < 3; day++) {
        for (let i = 0; i < 10; i++) await jobs.archive({ id: `d${day}-${i}`, n: i });
        clock.advance(DAY);
      }
      await h.maintain(store);
      const result = await store.prune(clock.now());
      expect(result.archivedRemoved).toBeGreaterThanOrEqual(5);
      expect(await jobs.get('ancient0')).toBeUndefined();
      expect(await jobs.get('d0-0')).toBeUndefined(); // the oldest beyond maxCount
      for (let i = 0; i < 10; i++) expect(await jobs.get(`d2-${i}`)).toEqual({ id: `d2-${i}`, n: i });
      expect(await jobs.archivedCount()).toBeGreaterThanOrEqual(10);
      expect(await jobs.archivedCount()).toBeLessThanOrEqual(20);
      const count = await jobs.archivedCount();
      const again = await reopen(store, retention);
      expect(await again.collection<Rec>('jobs').archivedCount()).toBe(count);
      expect(await again.collection<Rec>('jobs').get('ancient3')).toBeUndefined();
      await again.close();
    });

    it('finds live records by a field without the whole live set: kept right through put, change, archive, remove and a restart', async () => {
      interface Item extends StoredRecord {
        runId: string;
        n: number;
      }
      const store = await h.open({ clock });
      const items = store.collection<Item>('inbox');
      const ids = async (runId: string) => (await items.liveWhere('runId', runId)).map((i) => `${i.id}:${i.n}`).sort();
      await items.put({ id: 'a1', runId: 'A', n: 1 });
      await items.put({ id: 'b1', runId: 'B', n: 1 });
      expect(await ids('A')).toEqual(['a1:1']); // the index is made now…
      await items.put({ id: 'a2', runId: 'A', n: 1 }); // …and kept up to date after
      await items.put({ id: 'a1', runId: 'A', n: 2 });
      const moved = { id: 'b1', runId: 'B', n: 2 };
      moved.runId = 'A'; // changed in place before its put: found under its new value only
      await items.put(moved);
      expect(await ids('A')).toEqual(['a1:2', 'a2:1', 'b1:2']);
      expect(await ids('B')).toEqual([]);
      await items.archive({ id: 'a2', runId: 'A', n: 3 });
      await items.remove('a1');
      await items.put({ id: 'p', runId: '__proto__', n: 1 });
      await items.put({ id: 'u', runId: '审批-42', n: 1 });
      expect(await ids('A')).toEqual(['b1:2']);
      expect(await ids('constructor')).toEqual([]);
      expect(await ids('__proto__')).toEqual(['p:1']);
      const again = await reopen(store);
      const items2 = again.collection<Item>('inbox');
      expect((await items2.liveWhere('runId', 'A')).map((i) => i.id)).toEqual(['b1']);
      expect((await items2.liveWhere('runId', '审批-42')).map((i) => i.id)).toEqual(['u']);
      expect(await items2.liveWhere('n' as never, '1')).toEqual([]); // string fields only
      await again.close();
    });

    it('treats prototype names as plain ids and keys', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      const keys = store.keys<string>('idempotency');
      for (const id of PROTO_IDS) {
        expect(await jobs.get(id)).toBeUndefined();
        expect(await keys.get(id)).toBeUndefined();
      }
      for (const [i, id] of PROTO_IDS.entries()) {
        await jobs.put({ id, n: i });
        expect(await keys.claim(id, `v-${id}`, clock.now() + DAY)).toBe(true);
      }
      await jobs.archive({ id: 'constructor', n: 100 });
      expect(({} as Record<string, unknown>).n).toBeUndefined(); // nothing leaked onto Object.prototype
      const again = await reopen(store);
      const jobs2 = again.collection<Rec>('jobs');
      expect((await jobs2.live()).map((r) => r.id).sort()).toEqual(PROTO_IDS.filter((id) => id !== 'constructor').sort());
      expect(await jobs2.get('__proto__')).toEqual({ id: '__proto__', n: 0 });
      expect(await jobs2.get('constructor')).toEqual({ id: 'constructor', n: 100 });
      for (const id of PROTO_IDS) expect(await again.keys<string>('idempotency').get(id)).toBe(`v-${id}`);
      await h.maintain(again);
      const third = await reopen(again);
      expect(await third.collection<Rec>('jobs').get('__proto__')).toEqual({ id: '__proto__', n: 0 });
      expect(await third.keys<string>('idempotency').get('hasOwnProperty')).toBe('v-hasOwnProperty');
      await third.close();
    });

    it('keeps non-ASCII ids and keys exactly, live and archived, across restarts', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      const keys = store.keys<string>('idempotency');
      for (const [i, id] of NON_ASCII_IDS.entries()) {
        await jobs.put({ id, n: i });
        await keys.set(id, id, clock.now() + DAY);
        await jobs.put({ id: `${id}-archived`, n: i });
        await jobs.archive({ id: `${id}-archived`, n: -i - 1 });
      }
      const check = async (s: Store) => {
        const c = s.collection<Rec>('jobs');
        for (const [i, id] of NON_ASCII_IDS.entries()) {
          expect(await c.get(id)).toEqual({ id, n: i });
          expect(await c.get(`${id}-archived`)).toEqual({ id: `${id}-archived`, n: -i - 1 });
          expect(await s.keys<string>('idempotency').get(id)).toBe(id);
        }
        expect(await c.get('审批-43')).toBeUndefined();
        expect(await c.get('e-combining')).toBeUndefined(); // no normalisation: é and e + U+0301 differ
      };
      await check(store);
      const again = await reopen(store);
      await check(again);
      await h.maintain(again);
      const third = await reopen(again);
      await check(third);
      await third.close();
    });

    it('answers the newest copy of a record archived twice, and keeps a record put back to live after it was archived', async () => {
      const store = await h.open({ clock });
      const runs = store.collection<Rec>('runs');
      await runs.archive({ id: 'twice', n: 1 });
      await h.maintain(store);
      await runs.archive({ id: 'twice', n: 2 });
      await runs.archive({ id: 'retried', n: 1, updatedAt: '2026-11-20T00:00:00.000Z' });
      await runs.put({ id: 'retried', n: 2, updatedAt: '2026-11-20T00:00:01.000Z' }); // a Retry brings it back
      expect(await runs.get('twice')).toEqual({ id: 'twice', n: 2 });
      const check = async (s: Store) => {
        const r = s.collection<Rec>('runs');
        expect(await r.get('twice')).toEqual({ id: 'twice', n: 2 });
        expect((await r.live()).map((x) => x.n)).toEqual([2]);
        expect(await r.get('retried')).toMatchObject({ n: 2 });
      };
      const again = await reopen(store);
      await check(again);
      await h.maintain(again);
      const third = await reopen(again);
      await check(third);
      await third.close();
    });

    it('applies the changes of one record or key in call order, even when nobody awaits between them', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      const keys = store.keys<number>('idempotency');
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 150; i++) {
        const id = `rec${i}`;
        // Each sequence ends in a different state; any reordering within one leaves another.
        writes.push(jobs.put({ id, n: 1 }), jobs.archive({ id, n: 2 }));
        if (i % 3 === 0) writes.push(jobs.put({ id, n: 3 }));
        if (i % 3 === 1) writes.push(jobs.put({ id, n: 3 }), jobs.remove(id));
        writes.push(keys.set(id, 1, clock.now() + DAY), keys.delete(id));
        if (i % 2 === 0) writes.push(keys.set(id, 2, clock.now() + DAY));
      }
      await Promise.all(writes);
      for (let i = 0; i < 150; i++) {
        const id = `rec${i}`;
        expect(await jobs.get(id)).toEqual({ id, n: i % 3 === 0 ? 3 : 2 });
        expect(await keys.get(id)).toBe(i % 2 === 0 ? 2 : undefined);
      }
      expect((await jobs.live()).length).toBe(50);
      await store.close();
    });

    it('leases a new live record to its creator, hands stale ones out once, renews and releases only its own', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      for (const id of ['a', 'b', 'c', 'nul\u0000lease']) await jobs.put({ id, n: 1 });
      expect(await jobs.claimStale(10)).toEqual([]); // the creator holds them
      await jobs.put({ id: 'a', n: 2 }); // replacing keeps the lease
      expect(await jobs.claimStale(10)).toEqual([]);
      clock.advance(DEFAULT_LEASE_MS + 1);
      // Expired: handed out oldest first, each once.
      expect(await jobs.claimStale(2, 5000)).toEqual([
        { id: 'a', n: 2 },
        { id: 'b', n: 1 },
      ]);
      expect(await jobs.claimStale(10, 5000)).toEqual([
        { id: 'c', n: 1 },
        { id: 'nul\u0000lease', n: 1 },
      ]);
      expect(await jobs.claimStale(10)).toEqual([]);
      clock.advance(4000);
      expect((await jobs.renew(['a', 'nul\u0000lease', 'never-put'], 60_000)).sort()).toEqual(['a', 'nul\u0000lease']);
      clock.advance(2000); // b and c expired, a renewed
      expect((await jobs.claimStale(10, 5000)).map((r) => r.id)).toEqual(['b', 'c']);
      await jobs.release(['a']);
      expect((await jobs.claimStale(10, 5000)).map((r) => r.id)).toEqual(['a']);
      await jobs.archive({ id: 'a', n: 3 });
      expect(await jobs.renew(['a'])).toEqual([]); // archived: no lease left
      await jobs.put({ id: 'a', n: 4 }); // back to live: leased to who put it
      expect(await jobs.renew(['a'])).toEqual(['a']);
      expect(await jobs.claimStale(0)).toEqual([]);
      await store.close();
    });

    it('writes through putIfLeased and archiveIfLeased only while holding the lease', async () => {
      const store = await h.open({ clock });
      const jobs = store.collection<Rec>('jobs');
      await jobs.put({ id: 'mine', n: 1 });
      expect(await jobs.putIfLeased({ id: 'mine', n: 2 })).toBe(true);
      expect(await jobs.get('mine')).toEqual({ id: 'mine', n: 2 });
      expect(await jobs.putIfLeased({ id: 'not-live', n: 1 })).toBe(false);
      expect(await jobs.get('not-live')).toBeUndefined();
      expect(await jobs.archiveIfLeased({ id: 'not-live', n: 1 })).toBe(false);
      expect(await jobs.get('not-live')).toBeUndefined();
      expect(await jobs.archiveIfLeased({ id: 'mine', n: 3 })).toBe(true);
      expect(await jobs.live()).toEqual([]);
      expect(await jobs.get('mine')).toEqual({ id: 'mine', n: 3 });
      expect(await jobs.putIfLeased({ id: 'mine', n: 4 })).toBe(false); // archived: nothing to hold
      expect(await jobs.get('mine')).toEqual({ id: 'mine', n: 3 });

      // After a restart, the new process holds nothing until it claims: the old life's leases
      // expire (PostgreSQL) or died with it (embedded).
      await jobs.put({ id: 'old-life', n: 1 });
      const again = await reopen(store);
      const jobs2 = again.collection<Rec>('jobs');
      expect(await jobs2.putIfLeased({ id: 'old-life', n: 2 })).toBe(false);
      expect(await jobs2.archiveIfLeased({ id: 'old-life', n: 2 })).toBe(false);
      expect(await jobs2.renew(['old-life'])).toEqual([]);
      clock.advance(DEFAULT_LEASE_MS + 1);
      expect(await jobs2.claimStale(10)).toEqual([{ id: 'old-life', n: 1 }]);
      expect(await jobs2.putIfLeased({ id: 'old-life', n: 2 })).toBe(true);
      expect(await jobs2.get('old-life')).toEqual({ id: 'old-life', n: 2 });
      await again.close();
    });

    it('grants a named lock to one holder at a time, again after release, and drops them on close', async () => {
      const store = await h.open({ clock });
      const tick = await store.tryLock('poller:guance');
      expect(tick).toBeDefined();
      expect(await store.tryLock('poller:guance')).toBeUndefined();
      const other = await store.tryLock('run:审批\u000042');
      expect(other).toBeDefined();
      const racing = await Promise.all(Array.from({ length: 10 }, () => store.tryLock('retention-test')));
      expect(racing.filter(Boolean)).toHaveLength(1);
      await tick!.release();
      await tick!.release(); // idempotent: does not let go of a later holder's lock
      const next = await store.tryLock('poller:guance');
      expect(next).toBeDefined();
      await tick!.release();
      expect(await store.tryLock('poller:guance')).toBeUndefined();
      expect(next!.signal.aborted).toBe(false);
      await store.close();
      expect(next!.signal.aborted).toBe(true);
      expect(other!.signal.aborted).toBe(true);
    });
  });
}

async function journalHarness(): Promise<StoreHarness> {
  const dir = await tempDir('lark-bridge-contract-');
  const quiet = { warn: () => undefined, info: () => undefined };
  return {
    open: ({ clock, retention }) => openJournalStore({ dir, clock, log: quiet, retention: retention ? { jobs: retention } : undefined }),
    async crash(store) {
      (store as JournalStore).abandon();
    },
    async tornPut(collection, record) {
      const gens = journalGenerations(await readdir(dir));
      const framed = textFrame(putChange(collection, JSON.stringify(record)));
      await appendFile(join(dir, journalFileName(gens.at(-1)!)), framed.subarray(0, framed.length - 3));
    },
    maintain: (store) => (store as JournalStore).compact(),
    dispose: () => removeDir(dir),
  };
}

describeStoreContract('journal store', journalHarness);

/**
 * PostgreSQL: a throwaway cluster for this file (test/helpers/postgres.ts), a fresh database per
 * test. A crash is the server seeing this store's connections drop; a torn put is a transaction
 * whose connection died before COMMIT; maintenance is VACUUM.
 */
const quietLog = { warn: () => undefined, info: () => undefined };
const pgSkip = postgresSkipReason();
describe.skipIf(pgSkip !== undefined)('on PostgreSQL', () => {
  let cluster: PostgresCluster;
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());

  async function terminate(url: string, where: string, param: unknown): Promise<void> {
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE ${where}`, [param]);
    } finally {
      await admin.end();
    }
  }

  describeStoreContract('PostgreSQL store', async () => {
    const url = await cluster.createDatabase('contract');
    const opened: Store[] = [];
    return {
      async open({ clock, retention }) {
        const store = await openPgStore({ url, clock, log: quietLog, retention: retention ? { jobs: retention } : undefined });
        opened.push(store);
        return store;
      },
      async crash(store) {
        await terminate(cluster.url(), 'application_name = $1', (store as PgStore).applicationName);
        await store.close().catch(() => undefined);
      },
      async tornPut(collection, record) {
        const client = new pg.Client({ connectionString: url });
        client.on('error', () => undefined);
        await client.connect();
        const ended = new Promise((resolve) => client.once('end', resolve));
        await client.query('BEGIN');
        await client.query('INSERT INTO live_records (collection, id, doc) VALUES ($1, $2, $3)', [collection, record.id, JSON.stringify(record)]);
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await terminate(cluster.url(), 'pid = $1', rows[0]!.pid);
        await ended;
      },
      maintain: (store) => (store as PgStore).vacuum(),
      async dispose() {
        for (const s of opened) await s.close().catch(() => undefined);
      },
    };
  });
});
