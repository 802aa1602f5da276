import type { FlowRegistry } from '../flows/flow-registry.js';
import type { Run } from '../flows/run.js';
import type { Job } from '../jobs/job.js';
import type { TaskSyncWorker } from '../jobs/worker.js';
import type { Store } from '../store/store.js';
import type { MetricSources } from './prometheus.js';

/** Where the scrape-time gauges read the service's levels: the worker, the live records, the flows. */
export function serviceSources(o: { worker: TaskSyncWorker; store: Store; flows: FlowRegistry }): MetricSources {
  const jobs = o.store.collection<Job>('jobs');
  const runs = o.store.collection<Run>('runs');
  return {
    taskSyncQueue: () => o.worker.depth(),
    jobsFinished: () => o.worker.finished,
    liveJobStatuses: async () => (await jobs.live()).map((j) => j.status),
    liveRuns: async () =>
      (await runs.live()).filter((r) => r.status === 'active').map((r) => ({ flowId: r.flowId, step: r.steps.at(-1)?.step ?? 'submitted' })),
    flows: () => {
      const byKind = new Map<string, number>();
      for (const f of o.flows.all()) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
      return { byKind, invalidFiles: new Set(o.flows.problems().map((p) => p.file)).size };
    },
  };
}
