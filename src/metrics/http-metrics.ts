import type { Context, Next } from 'koa';
import type { Metrics } from './metrics.js';

/** The label of a request no route matched: raw paths never become labels (a scanner would make one series per probe). */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * Counts every request by the route template the router matched (`/api/task-sync/status/:jobId`),
 * with its final status, errors included: it sits outside the error middleware.
 */
export function httpMetrics(metrics: Metrics) {
  return async function httpMetricsMiddleware(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    try {
      await next();
    } finally {
      // @koa/router sets _matchedRoute to the matched layer's path template.
      const route = (ctx as Context & { _matchedRoute?: unknown })._matchedRoute;
      metrics.httpRequest(ctx.method, typeof route === 'string' ? route : UNMATCHED_ROUTE, ctx.status, (performance.now() - started) / 1000);
    }
  };
}
