import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../../src/app.js';
import type { RouteListing } from '../../src/http/route.js';
import { loadConfig } from '../../src/config.js';
import type { AppDeps } from '../../src/app.js';
import { createDeps } from '../../src/deps.js';
import { silentLogger } from '../../src/log.js';

export const TOKEN = 'test-token-0123456789';

export interface TestApp {
  url: string;
  dataDir: string;
  deps: AppDeps;
  /** Every registered route with its guard, as createApp lists them. */
  routes: RouteListing[];
  /** Stops like SIGTERM does: worker drained, store flushed. */
  stop(): Promise<void>;
  /** Drops the server without draining anything, as a crash would (the data dir stays). */
  crash(): Promise<void>;
}

export async function tempDir(prefix = 'lark-bridge-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Builds the real app (real store, worker, SDK) on a temp data dir and listens on loopback. */
export async function startTestApp(env: Record<string, string> = {}, dataDir?: string): Promise<TestApp> {
  const dir = dataDir ?? (await tempDir());
  // An empty flows folder of its own unless the test brings one (the repo's examples need env vars).
  const flowsDir = join(dir, 'flows-for-test');
  await mkdir(flowsDir, { recursive: true });
  const config = loadConfig({
    DATA_DIR: dir,
    FLOWS_DIR: flowsDir,
    API_TOKENS: TOKEN,
    LOG_LEVEL: 'silent',
    TASK_SYNC_RETRY_BASE_MS: '10',
    TASK_SYNC_CONNECT_TIMEOUT_MS: '1000',
    ...env,
  });
  const deps = await createDeps(config, silentLogger());
  const app = createApp(deps);
  await deps.worker.resume();
  await deps.engine?.resume();
  deps.flows.watch();
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const closeServer = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  const shutDown = async (graceMs: number, flushStore: boolean) => {
    deps.flows.close();
    await deps.engine?.stop();
    await deps.worker.stop(graceMs);
    await closeServer();
    if (flushStore) await deps.store.close();
    await deps.upstream.close();
  };
  return {
    url,
    dataDir: dir,
    deps,
    routes: app.routes,
    stop: () => shutDown(5_000, true),
    crash: () => shutDown(0, false),
  };
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export interface ApiAnswer {
  status: number;
  headers: Headers;
  json: any;
}

/** Calls the service like a client would: JSON in, JSON out, bearer token by default. */
export async function api(
  base: string,
  path: string,
  init: { method?: string; body?: unknown; rawBody?: string; token?: string | null; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? TOKEN}`;
  let body: string | undefined;
  if (init.rawBody !== undefined) body = init.rawBody;
  else if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, headers: res.headers, json };
}

/** Polls until `check` returns a truthy value or the deadline passes. */
export async function waitFor<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Polls a task-sync job until it reaches a final status. */
export async function waitForJob(base: string, jobId: string, timeoutMs = 10_000, token = TOKEN): Promise<any> {
  return waitFor(async () => {
    const r = await api(base, `/api/task-sync/status/${jobId}`, { token });
    return ['success', 'error', 'partial', 'accepted'].includes(r.json?.status) ? r.json : undefined;
  }, timeoutMs);
}
