import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DuplicateKind, Metrics, Scrape, UpstreamPurpose, UpstreamResult } from './metrics.js';

/**
 * Metrics in the Prometheus text format, through prom-client. Each call of createPrometheusMetrics
 * has its own registry (no global one: several apps in one test process keep their counts apart).
 *
 * Events (requests, calls, commits, runs) are counted as they happen; levels (queue depth, live
 * jobs and runs, flows) are read from their owners at scrape time through `observe`.
 */

/** Levels read at scrape time from the parts that own them. */
export interface MetricSources {
  /** Task-sync work not finished: records and bytes queued (running and waiting for a retry included), calls running and waiting for a slot. */
  taskSyncQueue(): { records: number; bytes: number; running: number; waiting: number };
  /** Task-sync jobs finished since start, by final status. */
  jobsFinished(): ReadonlyMap<string, number>;
  /** Statuses of the live (unfinished) task-sync jobs. */
  liveJobStatuses(): Promise<string[]>;
  /** Flow id and current step of each live approval run. */
  liveRuns(): Promise<Array<{ flowId: string; step: string }>>;
  /** Flows in force by kind, and flow files refused. */
  flows(): { byKind: ReadonlyMap<string, number>; invalidFiles: number };
}

export interface PrometheusMetrics extends Metrics, Scrape {
  /** Registers the scrape-time gauges (once the parts they read exist). */
  observe(sources: MetricSources): void;
}

const PREFIX = 'lark_bridge_';
// Task-sync single records may be waited on for up to TASK_SYNC_MAX_TIMEOUT (120 s by default).
const SLOW_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const LARK_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// A group commit is a write and an fdatasync: sub-millisecond on tmpfs, tens of ms on a busy disk.
const DISK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
// Methods Node's parser accepts are many; those that are not ours are one label value.
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function createPrometheusMetrics(): PrometheusMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const httpRequests = new Counter({ name: `${PREFIX}http_requests_total`, help: 'HTTP requests answered, by method, route template and status', labelNames: ['method', 'route', 'status'], registers });
  const httpSeconds = new Histogram({ name: `${PREFIX}http_request_duration_seconds`, help: 'Time to answer an HTTP request, by method and route template', labelNames: ['method', 'route'], buckets: SLOW_BUCKETS, registers });
  const upstreamSeconds = new Histogram({
    name: `${PREFIX}upstream_request_duration_seconds`,
    help: 'Calls to upstreams (task-sync webhooks, business APIs, poller feeds and webhooks, options URLs), by purpose and result',
    labelNames: ['purpose', 'result'],
    buckets: SLOW_BUCKETS,
    registers,
  });
  const larkCalls = new Counter({ name: `${PREFIX}lark_api_calls_total`, help: 'Lark Open API attempts by API and Lark code (0 = success)', labelNames: ['api', 'code'], registers });
  const larkSeconds = new Histogram({ name: `${PREFIX}lark_api_duration_seconds`, help: 'Lark Open API attempts by API (the call itself, not the rate limiter\'s wait)', labelNames: ['api'], buckets: LARK_BUCKETS, registers });
  const runsEnded = new Counter({ name: `${PREFIX}approval_runs_ended_total`, help: 'Approval runs that reached an end state, by flow and state', labelNames: ['flow', 'state'], registers });
  const pollerRuns = new Counter({ name: `${PREFIX}poller_runs_total`, help: 'Poller runs by poller and result (ok or error)', labelNames: ['poller', 'result'], registers });
  const pollerPosted = new Counter({ name: `${PREFIX}poller_items_posted_total`, help: 'Feed items posted by pollers', labelNames: ['poller'], registers });
  const pollerFailed = new Counter({ name: `${PREFIX}poller_items_failed_total`, help: 'Feed items a poller run could not post (tried again next run)', labelNames: ['poller'], registers });
  const duplicates = new Counter({ name: `${PREFIX}lark_event_duplicates_total`, help: 'Lark deliveries dropped as repeats, by what was claimed (event id, message id, card press)', labelNames: ['kind'], registers });
  const commitSeconds = new Histogram({ name: `${PREFIX}store_commit_duration_seconds`, help: 'Store group commits: one journal write and fdatasync', buckets: DISK_BUCKETS, registers });
  const commitBytes = new Counter({ name: `${PREFIX}store_commit_bytes_total`, help: 'Bytes the store appended to its journal', registers });

  let observed = false;
  return {
    httpRequest(method, route, status, seconds) {
      const m = METHODS.has(method) ? method : 'OTHER';
      httpRequests.inc({ method: m, route, status: String(status) });
      httpSeconds.observe({ method: m, route }, seconds);
    },
    upstreamCall(purpose: UpstreamPurpose, result: UpstreamResult, seconds: number) {
      upstreamSeconds.observe({ purpose, result }, seconds);
    },
    larkCall(api, code, seconds) {
      larkCalls.inc({ api, code: String(code) });
      larkSeconds.observe({ api }, seconds);
    },
    approvalRunEnded(flowId, status) {
      runsEnded.inc({ flow: flowId, state: status });
    },
    pollerRun(pollerId, ok, posted, failed) {
      pollerRuns.inc({ poller: pollerId, result: ok ? 'ok' : 'error' });
      // inc(0) still shows the series: a poller that never posts is seen at 0, not missing.
      pollerPosted.inc({ poller: pollerId }, posted);
      pollerFailed.inc({ poller: pollerId }, failed);
    },
    eventDuplicate(kind: DuplicateKind) {
      duplicates.inc({ kind });
    },
    storeCommit(seconds, bytes) {
      commitSeconds.observe(seconds);
      commitBytes.inc(bytes);
    },
    observe(sources) {
      if (observed) throw new Error('metric sources are already observed');
      observed = true;
      registerLevels(registry, sources);
    },
    async scrape() {
      return { contentType: registry.contentType, text: await registry.metrics() };
    },
  };
}

function registerLevels(registry: Registry, s: MetricSources): void {
  const registers = [registry];
  new Gauge({
    name: `${PREFIX}task_sync_queued_records`,
    help: 'Task-sync records not finished (waiting, running or waiting for a retry)',
    registers,
    collect() {
      this.set(s.taskSyncQueue().records);
    },
  });
  new Gauge({
    name: `${PREFIX}task_sync_queued_bytes`,
    help: "UTF-8 bytes of the unfinished records' ids and their jobs' URLs (what TASK_SYNC_MAX_QUEUED_BYTES bounds)",
    registers,
    collect() {
      this.set(s.taskSyncQueue().bytes);
    },
  });
  new Gauge({
    name: `${PREFIX}task_sync_calls`,
    help: 'Task-sync upstream calls running, and waiting for a concurrency slot',
    labelNames: ['state'],
    registers,
    collect() {
      const q = s.taskSyncQueue();
      this.set({ state: 'running' }, q.running);
      this.set({ state: 'waiting' }, q.waiting);
    },
  });
  new Gauge({
    name: `${PREFIX}task_sync_jobs`,
    help: 'Live (unfinished) task-sync jobs by status',
    labelNames: ['status'],
    registers,
    async collect() {
      const counts = new Map<string, number>([
        ['queued', 0],
        ['running', 0],
      ]);
      for (const status of await s.liveJobStatuses()) counts.set(status, (counts.get(status) ?? 0) + 1);
      this.reset();
      for (const [status, n] of counts) this.set({ status }, n);
    },
  });
  new Counter({
    name: `${PREFIX}task_sync_jobs_finished_total`,
    help: 'Task-sync jobs finished since start, by final status',
    labelNames: ['status'],
    registers,
    collect() {
      // The worker keeps the tally; a counter read from it stays monotonic for the process's life.
      this.reset();
      for (const [status, n] of s.jobsFinished()) this.inc({ status }, n);
    },
  });
  new Gauge({
    name: `${PREFIX}approval_runs_active`,
    help: 'Approval runs not finished, by flow and current step (checking, waiting_approvers, executing …)',
    labelNames: ['flow', 'step'],
    registers,
    async collect() {
      const counts = new Map<string, { flow: string; step: string; n: number }>();
      for (const r of await s.liveRuns()) {
        const key = JSON.stringify([r.flowId, r.step]);
        const c = counts.get(key) ?? { flow: r.flowId, step: r.step, n: 0 };
        c.n++;
        counts.set(key, c);
      }
      this.reset();
      for (const c of counts.values()) this.set({ flow: c.flow, step: c.step }, c.n);
    },
  });
  new Gauge({
    name: `${PREFIX}flows`,
    help: 'Flows in force by kind',
    labelNames: ['kind'],
    registers,
    collect() {
      const { byKind } = s.flows();
      this.reset();
      for (const kind of ['approval', 'poller']) this.set({ kind }, byKind.get(kind) ?? 0);
    },
  });
  new Gauge({
    name: `${PREFIX}flow_files_invalid`,
    help: 'Flow files refused (the last good version of each, if any, stays in force): alert when above 0',
    registers,
    collect() {
      this.set(s.flows().invalidFiles);
    },
  });
}
