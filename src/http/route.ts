import { Router } from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { z } from 'zod';
import { parseJsonBody, readBody } from './request-body.js';

/**
 * How a route proves who is calling. Every route names its guard where it is declared; the
 * route table runs it before the handler, so no path spelling can skip it.
 */
export interface Guard {
  /** bearer, lark-signature, business-hmac, options-token, public: shown in route listings. */
  readonly name: string;
  /** A guard that checks a signature over the raw bytes runs after the body is read; others before. */
  readonly needsBody: boolean;
  check(ctx: Context): Promise<void> | void;
}

/** Anyone may call it (health checks). Stated, never implied. */
export const publicAccess: Guard = { name: 'public', needsBody: false, check: () => undefined };

export interface Route<B = unknown> {
  method: 'GET' | 'POST';
  path: string;
  guard: Guard;
  /** The JSON body's schema: the handler receives the parsed value. Absent: the handler gets undefined. */
  body?: z.ZodType<B>;
  handler(ctx: Context, body: B): Promise<void> | void;
}

/** Declares a route; the generic ties the body schema to the handler's parameter. */
export function route<B = undefined>(r: Route<B>): Route {
  return r as unknown as Route;
}

export interface RouteListing {
  method: string;
  path: string;
  guard: string;
}

export function listRoutes(routes: readonly Route[]): RouteListing[] {
  return routes.map((r) => ({ method: r.method, path: r.path, guard: r.guard.name }));
}

/**
 * One router for every route: strict (a trailing slash is another path) and case-sensitive, so
 * a path matches exactly one spelling. Per route: guard → body → guard-over-body → schema → handler.
 */
export function routerFor(routes: readonly Route[], bodyLimitBytes: number): Router {
  const router = new Router({ strict: true, sensitive: true });
  const seen = new Set<string>();
  for (const r of routes) {
    if (!r.guard || typeof r.guard.check !== 'function') throw new Error(`route ${r.method} ${r.path} declares no guard`);
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) throw new Error(`route ${key} is declared twice`);
    seen.add(key);
    const steps = async (ctx: Context, _next: Next) => {
      if (!r.guard.needsBody) await r.guard.check(ctx);
      if (r.method !== 'GET') await readBody(ctx, bodyLimitBytes);
      if (r.guard.needsBody) await r.guard.check(ctx);
      const body = r.body ? parseJsonBody(ctx, r.body) : undefined;
      await r.handler(ctx, body);
    };
    if (r.method === 'GET') router.get(r.path, steps);
    else router.post(r.path, steps);
  }
  return router;
}

/**
 * After the router: 405 (with Allow) for a known path asked with another method. Unlike
 * @koa/router's allowedMethods alone, OPTIONS is a 405 too: it would run no guard, so it must not
 * answer 2xx (this API serves servers, not browsers: no CORS preflight to answer).
 */
export function methodNotAllowed(router: Router): Middleware {
  const allowed = router.allowedMethods() as unknown as Middleware;
  return async (ctx, next) => {
    await allowed(ctx, next);
    // allowedMethods answers OPTIONS on a known path with 200 and an Allow header.
    if (ctx.method === 'OPTIONS' && ctx.response.get('Allow')) ctx.status = 405;
  };
}
