import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createDeps } from '../src/deps.js';
import { silentLogger } from '../src/log.js';
import { removeDir, tempDir, TOKEN, waitFor } from './helpers/test-app.js';

// Task-sync jobs outlive the requests that made them. Before this test, the request's log context
// (kept by every async step the request starts) read the client through a getter over Koa's ctx,
// and the worker's call chains ran in the context of the request that started them: each running
// chain held a whole request (ctx, req, res, body) for as long as it kept running. Now the context
// holds plain values and queued work starts outside it (src/detached.ts).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects garbage until every ref is cleared (WeakRefs live until the current job ends). */
async function collected(refs: Array<WeakRef<object>>): Promise<number> {
  for (let round = 0; round < 20; round++) {
    await new Promise((r) => setImmediate(r));
    gc();
    if (refs.every((r) => r.deref() === undefined)) break;
  }
  return refs.filter((r) => r.deref() !== undefined).length;
}

const listen = async (server: Server) => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
};
const close = (server: Server) => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));

describe('work a request starts does not keep the request', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('queued and running task-sync jobs hold no reference to the requests that made them', async () => {
    // An upstream that takes the call and never answers: one job runs (hung), the rest wait.
    const hung = createServer(() => undefined);
    const upstreamUrl = await listen(hung);
    cleanups.push(() => close(hung));

    const dir = await tempDir();
    cleanups.push(() => removeDir(dir));
    await mkdir(join(dir, 'flows'));
    const config = loadConfig({
      DATA_DIR: dir,
      FLOWS_DIR: join(dir, 'flows'),
      API_TOKENS: TOKEN,
      LOG_LEVEL: 'silent',
      TASK_SYNC_ALLOWED_URLS: `${upstreamUrl}/hooks/`,
      TASK_SYNC_CONCURRENCY: '1',
    });
    const deps = await createDeps(config, silentLogger());
    cleanups.push(async () => {
      await deps.worker.stop(0);
      await deps.store.close();
      await deps.upstream.close();
    });
    const app = createApp(deps);
    const requests: Array<WeakRef<IncomingMessage>> = [];
    const server = createServer((req, res) => {
      requests.push(new WeakRef(req));
      void app.callback()(req, res);
    });
    const url = await listen(server);
    cleanups.push(() => close(server));

    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${url}/api/task-sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ webhookUrl: `${upstreamUrl}/hooks/x`, records: [`rec-${i}`] }),
      });
      expect(res.status).toBe(202);
      await res.arrayBuffer();
    }
    await waitFor(() => deps.worker.depth().running === 1 && deps.worker.depth().waiting === 4);
    server.closeAllConnections();

    expect(requests).toHaveLength(5);
    expect(await collected(requests)).toBe(0);
    // The jobs are still there, one running and four queued: they were kept, their requests were not.
    expect(deps.worker.depth()).toMatchObject({ records: 5, running: 1, waiting: 4 });
  });
});
