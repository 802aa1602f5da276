import type { Store } from '../store/store.js';
import { publicAccess, route, type Route } from './route.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<{ ok: boolean; detail?: string }>;
}

/** /healthz: the process answers. /readyz: it can do its work (store writable, flows loaded...). Both public. */
export function healthRoutes(store: Store, extraChecks: ReadinessCheck[] = []): Route[] {
  return [
    route({
      method: 'GET',
      path: '/healthz',
      guard: publicAccess,
      handler: (ctx) => {
        ctx.body = { status: 'ok' };
      },
    }),
    route({
      method: 'GET',
      path: '/readyz',
      guard: publicAccess,
      handler: async (ctx) => {
        const checks: Record<string, { ok: boolean; detail?: string }> = {
          store: (await store.isWritable()) ? { ok: true } : { ok: false, detail: 'data dir is not writable' },
        };
        for (const c of extraChecks) checks[c.name] = await c.check();
        const ready = Object.values(checks).every((c) => c.ok);
        ctx.status = ready ? 200 : 503;
        ctx.body = { status: ready ? 'ready' : 'not_ready', checks };
      },
    }),
  ];
}
