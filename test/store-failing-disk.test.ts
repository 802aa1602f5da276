import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type AppDeps } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createDeps } from '../src/deps.js';
import { silentLogger } from '../src/log.js';
import type { JournalStore } from '../src/store/journal-store.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { FaultyFileOps, type Fault } from './helpers/faulty-file-ops.js';
import { api, removeDir, tempDir, TOKEN, waitFor, waitForJob } from './helpers/test-app.js';

interface DiskApp {
  url: string;
  deps: AppDeps;
  ops: FaultyFileOps;
  close(): Promise<void>;
}

let upstream: FakeUpstream;
const apps: DiskApp[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
  await upstream?.close();
  await Promise.all(dirs.splice(0).map(removeDir));
});

/** The real app (real store, worker, routes) on a disk the test can make fail. */
async function startOnDisk(dataDir: string): Promise<DiskApp> {
  const flowsDir = join(dataDir, 'flows-for-test');
  await mkdir(flowsDir, { recursive: true });
  const config = loadConfig({
    DATA_DIR: dataDir,
    FLOWS_DIR: flowsDir,
    API_TOKENS: TOKEN,
    LOG_LEVEL: 'silent',
    TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/`,
    TASK_SYNC_RETRY_BASE_MS: '10',
  });
  const ops = new FaultyFileOps();
  const deps = await createDeps(config, silentLogger(), undefined, { fileOps: ops });
  const server: Server = createApp(deps).listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  let closed = false;
  const app: DiskApp = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deps,
    ops,
    async close() {
      if (closed) return;
      closed = true;
      await deps.worker.stop(1000);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      (deps.store as JournalStore).abandon();
      await deps.upstream.close();
    },
  };
  apps.push(app);
  return app;
}

const submit = (app: DiskApp, records: string[]) => api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/a`, records } });

describe('a failing disk, through the HTTP API', () => {
  const faults: Fault[] = [
    { at: 'datasync', code: 'EIO', file: /^journal-/ },
    { at: 'write', code: 'ENOSPC', file: /^journal-/ },
  ];
  for (const fault of faults) {
    it(`answers 503 and accepts nothing while the journal's ${fault.at} fails with ${fault.code}, then recovers by itself`, async () => {
      upstream = await startFakeUpstream(() => ({ status: 200 }));
      const dataDir = await tempDir('lark-bridge-disk-');
      dirs.push(dataDir);
      const app = await startOnDisk(dataDir);

      const before = await submit(app, ['before-1']);
      expect(before.status).toBe(202);
      expect((await waitForJob(app.url, before.json.jobId)).status).toBe('success');
      await app.deps.store.flush(); // its archive write has landed

      app.ops.fault = fault;
      const refused = await submit(app, ['refused-1', 'refused-2']);
      expect(refused.status).toBe(503);
      expect(refused.json.error).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/could not be saved/) });
      expect(refused.json.jobId).toBeUndefined();
      const ready = await api(app.url, '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.json.checks.store.ok).toBe(false);

      app.ops.fault = null; // the disk is back: nobody restarts anything
      await waitFor(async () => (await api(app.url, '/readyz')).status === 200);
      const after = await submit(app, ['after-1']);
      expect(after.status).toBe(202);
      expect((await waitForJob(app.url, after.json.jobId)).status).toBe('success');
      expect(upstream.callsFor('refused-1')).toHaveLength(0); // the job that was refused never ran
      expect(upstream.callsFor('refused-2')).toHaveLength(0);

      // And after a crash, the disk holds exactly the jobs that got their 202.
      await app.deps.store.flush();
      await app.close();
      const again = await startOnDisk(dataDir);
      for (const id of [before.json.jobId, after.json.jobId]) expect((await api(again.url, `/api/task-sync/status/${id}`)).json.status).toBe('success');
      const all = [...(await again.deps.store.collection<{ id: string; records: string[] }>('jobs').live())];
      expect(all.flatMap((j) => j.records)).not.toContain('refused-1');
      expect(await again.deps.store.collection('jobs').archivedCount()).toBe(2);
    });
  }
});
