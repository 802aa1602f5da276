import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { createUpstreamClient, type UpstreamClient } from '../src/upstream/client.js';
import { startFakeUpstream, type FakeUpstream } from './helpers/fake-upstream.js';
import { api, removeDir, startTestApp, waitFor, waitForJob, type TestApp } from './helpers/test-app.js';

let upstream: FakeUpstream | undefined;
let app: TestApp | undefined;
let client: UpstreamClient | undefined;
let silent: { server: Server; sockets: Set<Socket> } | undefined;

afterEach(async () => {
  await app?.stop();
  if (app) await removeDir(app.dataDir);
  await client?.close(0);
  await upstream?.close();
  if (silent) {
    for (const s of silent.sockets) s.destroy();
    await new Promise((r) => silent!.server.close(r));
  }
  upstream = app = client = silent = undefined;
});

/** A TCP server on loopback that accepts and never says a word: a TLS handshake to it never ends. */
async function silentServer(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  silent = { server, sockets };
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('one deadline for the whole upstream call', () => {
  it('a dripping upstream: a timeout: 1 record ends at its deadline as accepted, cut while the upstream still drips', async () => {
    // Headers at once, then one byte every 100 ms for 60 s: every gap is short, the whole is not.
    upstream = await startFakeUpstream(() => ({ status: 200, drip: { everyMs: 100, bytes: 600 } }));
    app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/` });
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/drip`, records: ['d1'], timeout: 1 } });
    expect(res.status).toBe(202);
    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.status).toBe('accepted');
    expect(job.results[0]).toMatchObject({ recordId: 'd1', status: 'accepted', attempts: 1, error: 'no complete answer within 1000 ms' });
    expect(job.results[0].durationMs).toBeGreaterThanOrEqual(1000);
    // We hung up, not the upstream: its 600-byte drip was far from done.
    const call = upstream.callsFor('d1')[0]!;
    await waitFor(() => call.cutAt !== undefined);
    expect(upstream.callsFor('d1')).toHaveLength(1); // accepted is final: not retried
  });

  it('a single record against a dripping upstream answers 202 accepted', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, drip: { everyMs: 100, bytes: 600 } }));
    app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/` });
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/drip`, recordId: 's1', timeout: 1 } });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('accepted');
  });

  it('an upstream that never sends headers: accepted at the deadline', async () => {
    upstream = await startFakeUpstream(() => ({ hang: true }));
    client = createUpstreamClient({ connectTimeoutMs: 5000, verifySsl: true });
    const outcome = await client.postJson(`${upstream.url}/hooks/h`, { recordId: 'h' }, {}, 300);
    expect(outcome).toMatchObject({ kind: 'timeout', error: 'no complete answer within 300 ms' });
    expect(outcome.durationMs).toBeGreaterThanOrEqual(300);
  });

  it('a connection that never completes within the deadline is a retryable failure, not accepted (nothing was sent)', async () => {
    const base = await silentServer();
    client = createUpstreamClient({ connectTimeoutMs: 60_000, verifySsl: true });
    const outcome = await client.postJson(`${base}/hooks/x`, { recordId: 'x' }, {}, 300);
    expect(outcome).toMatchObject({ kind: 'failure', retryable: true, error: 'could not connect and send within 300 ms' });

    // Through the service: retried, then an error — never "accepted".
    app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${base}/hooks/`, TASK_SYNC_RETRIES: '1', TASK_SYNC_CONNECT_TIMEOUT_MS: '60000' });
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${base}/hooks/x`, records: ['x'], timeout: 0.3 } });
    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.status).toBe('error');
    expect(job.results[0]).toMatchObject({ status: 'error', attempts: 2, error: 'could not connect and send within 300 ms' });
  });

  it('a 100 MB answer: read up to 1 MB, keep 2 KB, the record succeeds', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200, streamBytes: 100 * 1024 * 1024 }));
    app = await startTestApp({ TASK_SYNC_ALLOWED_URLS: `${upstream.url}/hooks/` });
    const res = await api(app.url, '/api/task-sync', { body: { webhookUrl: `${upstream.url}/hooks/big`, records: ['big'] } });
    const job = await waitForJob(app.url, res.json.jobId);
    expect(job.status).toBe('success');
    expect(job.results[0].response).toMatch(/^0{2048}…\(\d+ bytes\)$/);
    await waitFor(() => upstream!.callsFor('big')[0]?.cutAt !== undefined); // we stopped reading it
  });

  it('close() cuts calls still running after its grace: they end as cancelled, not as accepted or failed', async () => {
    upstream = await startFakeUpstream(() => ({ hang: true }));
    client = createUpstreamClient({ connectTimeoutMs: 5000, verifySsl: true });
    const pending = client.postJson(`${upstream.url}/hooks/h`, { recordId: 'h' }, {}, 60_000);
    await waitFor(() => upstream!.calls.length === 1);
    await client.close(50);
    expect(await pending).toMatchObject({ kind: 'failure', cancelled: true });
  });

  it('calls made under one long-lived stop signal leave nothing behind (no AbortSignal.any chain)', async () => {
    upstream = await startFakeUpstream(() => ({ status: 200 }));
    client = createUpstreamClient({ connectTimeoutMs: 5000, verifySsl: true });
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const stop = new AbortController(); // lives as long as the worker: every call listens to it
    const heapAfter = async (calls: number) => {
      for (let i = 0; i < calls / 8; i++) {
        await Promise.all(Array.from({ length: 8 }, () => client!.postJson(`${upstream!.url}/hooks/m`, { recordId: 'm' }, {}, 5000, undefined, stop.signal)));
      }
      upstream!.calls.length = 0; // the fake's own record of calls is not ours to count
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const base = await heapAfter(2000);
    const grown = (await heapAfter(4000)) - base;
    // With AbortSignal.any([deadline, stop]) each call stayed reachable from `stop`: ~9 KB a call, 36 MB here.
    expect(grown).toBeLessThan(8 * 1024 * 1024);
  }, 60_000);
});
