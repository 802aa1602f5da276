import { NotAuthenticated, NotFound } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
import { safeEqual } from '../safe-equal.js';
import type { Scrape } from './metrics.js';

/**
 * The `metrics-token` guard: `Authorization: Bearer <METRICS_TOKEN>`, compared in constant time.
 * Its own token, not one of API_TOKENS: a scraper cannot create jobs, and an API client cannot
 * read the service's metrics. Without METRICS_TOKEN every scrape is refused (deny by default).
 */
export function metricsToken(token: string | undefined): Guard {
  return {
    name: 'metrics-token',
    needsBody: false,
    check(ctx) {
      if (!token) throw new NotAuthenticated('metrics are off: set METRICS_TOKEN on the server to serve /metrics');
      const match = /^Bearer +(\S+) *$/i.exec(ctx.get('authorization'));
      if (!match) throw new NotAuthenticated('send Authorization: Bearer <METRICS_TOKEN>');
      if (!safeEqual(token, match[1]!)) throw new NotAuthenticated('metrics token is not valid');
    },
  };
}

/** GET /metrics: the Prometheus text exposition, behind the metrics token. */
export function metricsRoutes(metrics: Partial<Scrape>, guard: Guard): Route[] {
  return [
    route({
      method: 'GET',
      path: '/metrics',
      guard,
      async handler(ctx) {
        if (!metrics.scrape) throw new NotFound('metrics are not collected in this process');
        const { contentType, text } = await metrics.scrape();
        ctx.type = contentType;
        ctx.body = text;
      },
    }),
  ];
}
