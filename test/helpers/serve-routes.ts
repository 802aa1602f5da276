import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { afterEach, beforeEach } from 'vitest';
import { renderErrors } from '../../src/http/errors-middleware.js';
import { methodNotAllowed, routerFor, type Route } from '../../src/http/route.js';
import { silentLogger } from '../../src/log.js';

export interface Served {
  url: string;
  /** Errors that reached the 500 handler (a guard or handler that crashed). */
  crashes: unknown[];
  close(): Promise<void>;
}

/** A bare Koa app with the error middleware and one route table, as createApp mounts them, on loopback. */
export async function serveRoutes(routes: Route[], bodyLimitBytes = 1 << 20): Promise<Served> {
  const crashes: unknown[] = [];
  const app = new Koa();
  app.silent = true;
  const router = routerFor(routes, bodyLimitBytes);
  app.use(renderErrors(silentLogger(), (err) => void crashes.push(err)));
  app.use(router.routes()).use(methodNotAllowed(router));
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    crashes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** POSTs JSON (or exact text) and reads the JSON answer. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/**
 * A fresh server for each test, built in beforeEach: what builds the routes then runs inside each
 * test (a failure there fails the test, and mutation testing's per-test coverage sees it).
 */
export function servedPerTest(build: () => Promise<Served>): { get(): Served } {
  let current: Served | undefined;
  beforeEach(async () => {
    current = await build();
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
  return {
    get() {
      if (!current) throw new Error('the server is built in beforeEach');
      return current;
    },
  };
}
