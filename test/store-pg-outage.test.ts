/**
 * The database goes down and comes back: calls reject with Unavailable (HTTP 503) while it is
 * down, nothing is acknowledged that was not committed, and the same store (the same process)
 * works again once it is back, without a restart.
 */
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createDeps } from '../src/deps.js';
import { Unavailable } from '../src/errors.js';
import { silentLogger } from '../src/log.js';
import { openPgStore, type PgStore } from '../src/store/pg/pg-store.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { postgresSkipReason, startPostgres, type PostgresCluster } from './helpers/postgres.js';
import { fakeClock } from './helpers/store-clock.js';
import { api, removeDir, tempDir, TOKEN, waitFor, waitForJob } from './helpers/test-app.js';

const DAY = 86_400_000;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => 'resolved',
    (err: unknown) => err,
  );
}

describe.skipIf(postgresSkipReason() !== undefined)('the database goes down and comes back', () => {
  let cluster: PostgresCluster;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    cluster = await startPostgres();
  }, 60_000);
  afterAll(() => cluster?.dispose());
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    await cluster.start().catch(() => undefined); // a test that failed half-way may have left it down
  });

  it('rejects every call with Unavailable while it is down, and works again once it is back', async () => {
    const url = await cluster.createDatabase('outage');
    const clock = fakeClock();
    const warnings: string[] = [];
    const store: PgStore = await openPgStore({ url, clock, log: { warn: (m) => warnings.push(m), info: () => undefined }, connectTimeoutMs: 1000, lockHeartbeatMs: 100 });
    cleanups.push(() => store.close());
    const jobs = store.collection<{ id: string; n: number }>('jobs');
    const keys = store.keys<string>('lark-events');
    await jobs.put({ id: 'before', n: 1 });
    const held = await store.tryLock('poller:feed');
    expect(held).toBeDefined();

    await cluster.stop('fast');
    const calls = [jobs.put({ id: 'during', n: 1 }), jobs.get('before'), keys.claim('ev', 'x', clock.now() + DAY), store.tryLock('poller:other'), jobs.claimStale(10)];
    for (const err of await Promise.all(calls.map(rejection))) {
      expect(err).toBeInstanceOf(Unavailable);
      expect((err as Unavailable).message).toMatch(/^the database is unavailable \(.+\): try again shortly$/);
    }
    expect(await store.isWritable()).toBe(false);
    // The lock's connection is gone, and the lock with it: its holder is told.
    await waitFor(() => held!.signal.aborted, 5_000);
    expect(warnings.join('\n')).toMatch(/holding 1 named lock\(s\) dropped/);

    await cluster.start();
    await waitFor(() => store.isWritable(), 10_000);
    await jobs.put({ id: 'after', n: 1 });
    expect(await jobs.get('before')).toEqual({ id: 'before', n: 1 });
    expect(await jobs.get('after')).toEqual({ id: 'after', n: 1 });
    expect(await jobs.get('during')).toBeUndefined(); // refused, so never there
    expect(await keys.claim('ev', 'x', clock.now() + DAY)).toBe(true);
    const again = await store.tryLock('poller:feed');
    expect(again).toBeDefined();
    await again!.release();
  });

  it('answers 503 to new work through the HTTP API while it is down, and 202 again once it is back', async () => {
    const upstream: FakeUpstream = await startFakeUpstream(() => ({ status: 200 }));
    cleanups.push(() => upstream.close());
    const url = await cluster.createDatabase('outage_http');
    const dir = await tempDir('lark-bridge-pg-outage-');
    cleanups.push(() => removeDir(dir));
    const flowsDir = join(dir, 'flows');
    await mkdir(flowsDir);
    const config = loadConfig({
      DATABASE_URL: url,
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      DATA_DIR: dir,
      FLOWS_DIR: flowsDir,
      API_TOKENS: TOKEN,
      LOG_LEVEL: 'silent',
      TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
      TASK_SYNC_RETRY_BASE_MS: '10',
    });
    const deps: AppDeps = await createDeps(config, silentLogger());
    const server: Server = createApp(deps).listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    cleanups.push(async () => {
      await deps.worker.stop(1000);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await deps.store.close();
      await deps.upstream.close();
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const submit = (records: string[]) => api(base, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/a`, records } });

    const before = await submit(['before-1']);
    expect(before.status).toBe(202);
    expect((await waitForJob(base, before.json.jobId)).status).toBe('success');
    await deps.store.flush();

    await cluster.stop('fast');
    const refused = await submit(['refused-1', 'refused-2']);
    expect(refused.status).toBe(503);
    expect(refused.json.error).toMatchObject({ code: 'unavailable' });
    expect(refused.json.jobId).toBeUndefined();
    const ready = await api(base, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json.checks.store.ok).toBe(false);

    await cluster.start(); // nobody restarts the service
    await waitFor(async () => (await api(base, '/readyz')).status === 200, 10_000);
    const after = await submit(['after-1']);
    expect(after.status).toBe(202);
    expect((await waitForJob(base, after.json.jobId)).status).toBe('success');
    expect(upstream.callsFor('refused-1')).toHaveLength(0);
    // The database holds exactly the jobs that got their 202.
    const jobs = deps.store.collection<{ id: string; records: string[] }>('jobs');
    await deps.store.flush();
    expect((await jobs.live()).flatMap((j) => j.records)).not.toContain('refused-1');
    expect(await jobs.archivedCount()).toBe(2);
    for (const id of [before.json.jobId, after.json.jobId]) expect((await jobs.get(id))?.records).toBeDefined();
  });
});
