import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa, { type Context } from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { NotAuthenticated } from '../src/errors.js';
import { renderErrors } from '../src/http/errors-middleware.js';
import { listRoutes, methodNotAllowed, publicAccess, route, routerFor, type Guard, type Route } from '../src/http/route.js';
import { silentLogger } from '../src/log.js';

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
});

async function serve(routes: Route[]): Promise<string> {
  const app = new Koa();
  const router = routerFor(routes, 1024);
  app.use(renderErrors(silentLogger(), () => undefined));
  app.use(router.routes()).use(methodNotAllowed(router));
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server!.once('listening', r));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

/** A guard that writes down what it saw, then refuses or lets through. */
function spyGuard(needsBody: boolean, allow: boolean) {
  const seen: Array<{ bodyRead: boolean }> = [];
  const guard: Guard = {
    name: 'spy',
    needsBody,
    check(ctx: Context) {
      seen.push({ bodyRead: ctx.request.rawBody !== undefined });
      if (!allow) throw new NotAuthenticated('spy says no');
    },
  };
  return { guard, seen };
}

describe('routerFor', () => {
  it('refuses to register a route without a guard, or with a guard that cannot check', () => {
    const handler = () => undefined;
    expect(() => routerFor([{ method: 'GET', path: '/x', handler } as unknown as Route], 1024)).toThrow('route GET /x declares no guard');
    expect(() => routerFor([{ method: 'GET', path: '/x', guard: { name: 'fake', needsBody: false }, handler } as unknown as Route], 1024)).toThrow(/declares no guard/);
    expect(() => routerFor([route({ method: 'GET', path: '/x', guard: publicAccess, handler }), route({ method: 'GET', path: '/x', guard: publicAccess, handler })], 1024)).toThrow(/declared twice/);
  });

  it('runs a header guard before the body is read and before the handler; a refused caller never reaches either', async () => {
    const { guard, seen } = spyGuard(false, false);
    let handled = 0;
    const base = await serve([route({ method: 'POST', path: '/p', guard, body: z.object({ a: z.number() }), handler: () => void handled++ })]);
    // The body is announced but never finished: the 401 must come without waiting for it.
    const status = await new Promise<number>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error('no answer while the body was still open: the guard waited for it')), 5_000);
      const req = request(`${base}/p`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '500' } }, (res) => {
        res.resume();
        clearTimeout(deadline);
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      req.write('{"a":'); // and nothing more
    });
    expect(status).toBe(401);
    expect(seen).toEqual([{ bodyRead: false }]);
    expect(handled).toBe(0);
  });

  it('refuses an unauthenticated caller before the schema: a bad body from a stranger is a 401, not a 400', async () => {
    const { guard } = spyGuard(false, false);
    const base = await serve([route({ method: 'POST', path: '/p', guard, body: z.object({ a: z.number() }), handler: () => undefined })]);
    const res = await fetch(`${base}/p`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":"not a number"}' });
    expect(res.status).toBe(401);
  });

  it('runs a signature guard after the body is read, and still before the handler', async () => {
    const refused = spyGuard(true, false);
    const allowed = spyGuard(true, true);
    const calls: unknown[] = [];
    const base = await serve([
      route({ method: 'POST', path: '/no', guard: refused.guard, handler: () => void calls.push('no') }),
      route({ method: 'POST', path: '/yes', guard: allowed.guard, body: z.object({ a: z.number() }), handler: (ctx, body) => {
        calls.push(body);
        ctx.status = 204;
      } }),
    ]);
    expect((await fetch(`${base}/no`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(401);
    expect(refused.seen).toEqual([{ bodyRead: true }]);
    const ok = await fetch(`${base}/yes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(ok.status).toBe(204);
    expect(allowed.seen).toEqual([{ bodyRead: true }]);
    expect(calls).toEqual([{ a: 1 }]);
  });

  it('matches one spelling only (case-sensitive, strict) and answers OPTIONS and other methods with 405', async () => {
    const base = await serve([route({ method: 'GET', path: '/only/this', guard: publicAccess, handler: (ctx) => void (ctx.body = { ok: true }) })]);
    expect((await fetch(`${base}/only/this`)).status).toBe(200);
    for (const path of ['/Only/this', '/only/THIS', '/only/this/', '/only//this', '/only/th%69s']) {
      expect((await fetch(base + path)).status, path).toBe(404);
    }
    const options = await fetch(`${base}/only/this`, { method: 'OPTIONS' });
    expect(options.status).toBe(405);
    expect(options.headers.get('allow')).toMatch(/GET/);
    expect((await fetch(`${base}/only/this`, { method: 'DELETE' })).status).toBe(405);
  });
});

describe('routerFor, more exactly', () => {
  it('lists each route with its method, path and guard name', () => {
    const handler = () => undefined;
    const { guard } = spyGuard(true, true);
    expect(listRoutes([route({ method: 'GET', path: '/a', guard: publicAccess, handler }), route({ method: 'POST', path: '/b/:id', guard, handler })])).toEqual([
      { method: 'GET', path: '/a', guard: 'public' },
      { method: 'POST', path: '/b/:id', guard: 'spy' },
    ]);
  });

  it('runs a header guard once, before the body is read, and then reads the body of a POST', async () => {
    const { guard, seen } = spyGuard(false, true);
    const bodies: Array<string | undefined> = [];
    const base = await serve([route({ method: 'POST', path: '/p', guard, handler: (ctx) => {
      bodies.push(ctx.request.rawBody?.toString());
      ctx.status = 204;
    } })]);
    expect((await fetch(`${base}/p`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })).status).toBe(204);
    expect(seen).toEqual([{ bodyRead: false }]);
    expect(bodies).toEqual(['{"a":1}']);
  });

  it('never reads the body of a GET, whatever its guard', async () => {
    const { guard, seen } = spyGuard(true, true);
    const bodies: unknown[] = [];
    const base = await serve([route({ method: 'GET', path: '/g', guard, handler: (ctx) => {
      bodies.push(ctx.request.rawBody);
      ctx.status = 204;
    } })]);
    // A GET with a body larger than the 1 KiB limit: not read, so not refused.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/g`, { method: 'GET', headers: { 'content-type': 'application/json', 'content-length': '2048' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end('x'.repeat(2048));
    });
    expect(status).toBe(204);
    expect(seen).toEqual([{ bodyRead: false }]);
    expect(bodies).toEqual([undefined]);
  });

  it('turns only an OPTIONS answer into 405: an unknown path stays 404, an unknown method 501', async () => {
    const base = await serve([route({ method: 'GET', path: '/known', guard: publicAccess, handler: (ctx) => void (ctx.body = { ok: true }) })]);
    expect((await fetch(`${base}/known`, { method: 'OPTIONS' })).status).toBe(405);
    expect((await fetch(`${base}/nowhere`, { method: 'OPTIONS' })).status).toBe(404);
    // A method the router does not implement at all is told so (with Allow), not 405.
    const propfind = await fetch(`${base}/known`, { method: 'PROPFIND' });
    expect(propfind.status).toBe(501);
    expect(propfind.headers.get('allow')).toMatch(/GET/);
  });
});
