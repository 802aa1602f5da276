import { NotFound } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
import type { Pollers } from './pollers.js';

/**
 * GET /api/pollers lists the pollers in force with their state; POST /api/pollers/:id/run runs
 * one now and answers what it posted. Both behind the API token.
 */
export function pollerRoutes(pollers: Pollers | undefined, bearer: Guard): Route[] {
  const need = (): Pollers => {
    if (!pollers) throw new NotFound('pollers are not enabled in this deployment');
    return pollers;
  };
  return [
    route({
      method: 'GET',
      path: '/api/pollers',
      guard: bearer,
      async handler(ctx) {
        ctx.body = { pollers: await need().list() };
      },
    }),
    route({
      method: 'POST',
      path: '/api/pollers/:id/run',
      guard: bearer,
      async handler(ctx) {
        ctx.body = await need().runNow(String(ctx.params.id));
      },
    }),
  ];
}
