import type { Clock } from '../clock.js';
import type { RecentRunFailures } from '../flows/recent-failures.js';
import type { Run } from '../flows/run.js';
import type { Job } from '../jobs/job.js';
import type { TaskSyncWorker } from '../jobs/worker.js';
import type { Pollers } from '../pollers/pollers.js';
import type { RecordCollection } from '../store/store.js';
import { route, type Guard, type Route } from './route.js';

export interface StatusSources {
  worker: TaskSyncWorker;
  jobs: RecordCollection<Job>;
  runs: RecordCollection<Run>;
  pollers?: Pollers;
  /** Absent when approvals are off (Lark not configured). */
  failures?: RecentRunFailures;
  clock: Clock;
  /** When this app was built (ms). */
  startedAt: number;
}

/**
 * GET /api/status (bearer): what an operator looks at when something is slow or failing — the
 * task-sync queue (in all and per client: clients are named by their token's digest, never the
 * token), task-sync jobs by status, the pollers' last runs, active approval runs and the last
 * failed ones.
 */
export function statusRoutes(s: StatusSources, bearer: Guard): Route[] {
  return [
    route({
      method: 'GET',
      path: '/api/status',
      guard: bearer,
      async handler(ctx) {
        const now = s.clock.now();
        ctx.body = {
          now: new Date(now).toISOString(),
          startedAt: new Date(s.startedAt).toISOString(),
          uptimeSec: Math.round((now - s.startedAt) / 1000),
          taskSync: taskSyncStatus(s.worker, String(ctx.state.client ?? '')),
          jobs: await jobCounts(s),
          pollers: await pollerStatus(s.pollers),
          approvals: {
            active: await activeRuns(s.runs),
            recentFailures: s.failures ? await s.failures.recent() : [],
          },
        };
      },
    }),
  ];
}

function taskSyncStatus(worker: TaskSyncWorker, caller: string) {
  const depth = worker.depth();
  return {
    queued: { records: depth.records, bytes: depth.bytes },
    calls: { running: depth.running, waiting: depth.waiting },
    clients: worker
      .clients()
      .sort((a, b) => b.records - a.records || (a.client < b.client ? -1 : 1))
      .map((c) => ({ ...c, ...(c.client === caller ? { you: true } : {}) })),
  };
}

async function jobCounts(s: StatusSources) {
  const live: Record<string, number> = { queued: 0, running: 0 };
  for (const job of await s.jobs.live()) live[job.status] = (live[job.status] ?? 0) + 1;
  return { live, finishedSinceStart: Object.fromEntries(s.worker.finished), archived: await s.jobs.archivedCount() };
}

/** Each poller's schedule and last run, from the pollers themselves (the same view as GET /api/pollers, without source and target). */
async function pollerStatus(pollers: Pollers | undefined) {
  if (!pollers) return [];
  const keep = ['id', 'scheduled', 'problem', 'running', 'nextRunAt', 'lastRun', 'lastError', 'backoffUntil', 'counts'];
  return (await pollers.list()).map((p) => Object.fromEntries(Object.entries(p as Record<string, unknown>).filter(([k]) => keep.includes(k))));
}

/** Live runs by flow and current step: [{flow, step, runs}]. */
async function activeRuns(runs: RecordCollection<Run>) {
  const counts = new Map<string, { flow: string; step: string; runs: number }>();
  for (const r of await runs.live()) {
    if (r.status !== 'active') continue;
    const step = r.steps.at(-1)?.step ?? 'submitted';
    const key = JSON.stringify([r.flowId, step]);
    const c = counts.get(key) ?? { flow: r.flowId, step, runs: 0 };
    c.runs++;
    counts.set(key, c);
  }
  return [...counts.values()];
}
