import type { FlowRegistry } from '../flows/flow-registry.js';
import type { Store } from '../store/store.js';
import { publicAccess, route, type Route } from './route.js';

/** What one readiness check reports: ok, a line for people, and whatever details it has. */
export interface CheckResult {
  ok: boolean;
  detail?: string;
  [more: string]: unknown;
}

export interface ReadinessCheck {
  name: string;
  check(): Promise<CheckResult>;
}

/** A probe answers within this, whatever a check waits for (a stuck disk, Lark not answering). */
export const CHECK_DEADLINE_MS = 3_000;

/**
 * /healthz: the process answers. /readyz: it can do its work; 503 with the reason when a check
 * fails. Both public (nginx and supervisors call them without credentials).
 */
export function healthRoutes(checks: ReadinessCheck[]): Route[] {
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
        // Checks run side by side, each within the deadline: one slow check cannot hold the probe.
        const results = await Promise.all(checks.map((c) => withDeadline(c)));
        const byName: Record<string, CheckResult> = Object.create(null);
        checks.forEach((c, i) => (byName[c.name] = results[i]!));
        const failing = checks.filter((c) => !byName[c.name]!.ok).map((c) => `${c.name}: ${byName[c.name]!.detail ?? 'not ready'}`);
        ctx.status = failing.length ? 503 : 200;
        ctx.body = { status: failing.length ? 'not_ready' : 'ready', ...(failing.length ? { reason: failing.join('; ') } : {}), checks: byName };
      },
    }),
  ];
}

async function withDeadline(c: ReadinessCheck): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${CHECK_DEADLINE_MS / 1000} s` }), CHECK_DEADLINE_MS);
    timer.unref();
  });
  try {
    return await Promise.race([c.check().catch((err: unknown) => ({ ok: false, detail: `check failed: ${(err as Error)?.message ?? String(err)}` })), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `store`: the data dir takes writes (after a failed write, a tiny commit proves it again). */
export function storeCheck(store: Store): ReadinessCheck {
  return {
    name: 'store',
    check: async () => ((await store.isWritable()) ? { ok: true } : { ok: false, detail: 'the store does not take writes (data dir or database: see the log)' }),
  };
}

/**
 * `flows`: loaded, with the flows in force by kind and every invalid file (file, JSON path,
 * reason). An invalid file does not make the service unready: the last good version of it, if
 * any, stays in force (named in `keeps`), and the other flows run.
 */
export function flowsCheck(flows: FlowRegistry): ReadinessCheck {
  return {
    name: 'flows',
    async check() {
      if (!flows.loaded) return { ok: false, detail: 'flows not loaded yet' };
      const counts = { approval: 0, poller: 0 };
      for (const f of flows.all()) counts[f.kind]++;
      const problems = flows.problems().sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
      const invalid = problems.map((p) => {
        const kept = flows.inForceFrom(p.file);
        return { file: p.file, path: p.path, reason: p.message, ...(kept ? { keeps: kept.id } : {}) };
      });
      const files = new Set(invalid.map((p) => p.file));
      const loaded = `${counts.approval + counts.poller} loaded (${counts.approval} approval, ${counts.poller} poller)`;
      const detail = files.size ? `${loaded}; ${files.size} invalid file(s): ${[...files].join(', ')}` : loaded;
      return { ok: true, detail, counts, invalid };
    },
  };
}
