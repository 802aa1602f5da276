import { Router } from '@koa/router';
import type { Store } from '../store/store.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<{ ok: boolean; detail?: string }>;
}

/** /healthz: the process answers. /readyz: it can do its work (store writable, flows loaded...). */
export function healthRoutes(store: Store, extraChecks: ReadinessCheck[] = []): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    const checks: Record<string, { ok: boolean; detail?: string }> = {
      store: (await store.isWritable()) ? { ok: true } : { ok: false, detail: 'data dir is not writable' },
    };
    for (const c of extraChecks) checks[c.name] = await c.check();
    const ready = Object.values(checks).every((c) => c.ok);
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not_ready', checks };
  });
  return router;
}
