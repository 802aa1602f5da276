/**
 * What the service tells its metrics, in its own words. Domain code gets a Metrics object passed
 * in (never a prom-client import): src/metrics/prometheus.ts is the one implementation that
 * counts, `noMetrics` the one that does not (metrics off, tests that do not look).
 */

/** Who made an upstream call: the label that keeps task-sync apart from business APIs and feeds. */
export type UpstreamPurpose = 'task_sync' | 'business' | 'poller' | 'options';

/** How an upstream call ended: success, a non-2xx answer, no complete answer in time, no answer at all, or cut by a stop. */
export type UpstreamResult = 'success' | 'http_4xx' | 'http_5xx' | 'timeout' | 'error' | 'cancelled';

/** Which claim of the event intake a repeat was dropped by. */
export type DuplicateKind = 'event' | 'message' | 'card';

export interface Metrics {
  /** One HTTP request: `route` is the route template (/api/task-sync/status/:jobId), never the raw path. */
  httpRequest(method: string, route: string, status: number, seconds: number): void;
  upstreamCall(purpose: UpstreamPurpose, result: UpstreamResult, seconds: number): void;
  /** One Open API attempt: `api` names it (im.message.create), `code` is Lark's (0: success, -1: no answer, -status: HTTP error without a code). */
  larkCall(api: string, code: number, seconds: number): void;
  /** An approval run reached an end state (done, failed, closed, ignored). */
  approvalRunEnded(flowId: string, status: string): void;
  pollerRun(pollerId: string, ok: boolean, posted: number, failed: number): void;
  /** A redelivered (or doubly delivered) Lark event, message or card press was dropped. */
  eventDuplicate(kind: DuplicateKind): void;
  /** One group commit of the store: its write and fdatasync, and the bytes it wrote. */
  storeCommit(seconds: number, bytes: number): void;
}

/** Metrics that can be read: the Prometheus text exposition and its content type. */
export interface Scrape {
  scrape(): Promise<{ contentType: string; text: string }>;
}

export const noMetrics: Metrics = {
  httpRequest: () => undefined,
  upstreamCall: () => undefined,
  larkCall: () => undefined,
  approvalRunEnded: () => undefined,
  pollerRun: () => undefined,
  eventDuplicate: () => undefined,
  storeCommit: () => undefined,
};
