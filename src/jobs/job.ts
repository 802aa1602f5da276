/** A task-sync job: data plus an explicit state machine (queued → running → final). */
export type JobStatus = 'queued' | 'running' | 'success' | 'error' | 'partial' | 'accepted';
export type RecordStatus = 'success' | 'error' | 'accepted';

export interface RecordResult {
  recordId: string;
  status: RecordStatus;
  httpStatus?: number;
  durationMs: number;
  attempts: number;
  response?: string;
  error?: string;
}

export interface Job {
  id: string;
  mode: 'single' | 'batch';
  webhookUrl: string;
  records: string[];
  timeoutSec: number;
  status: JobStatus;
  /** One slot per record, in order; null until that record has a final result. */
  results: (RecordResult | null)[];
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
  idempotencyKey?: string;
  /** The API client (token digest) that created the job; only it can read the job's status. */
  client?: string;
}

const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['success', 'error', 'partial', 'accepted']);

export function isFinal(job: Job): boolean {
  return FINAL_STATUSES.has(job.status);
}

/** success: all succeeded; error: all failed; partial: failures mixed with anything else; accepted: no failure, some accepted. */
export function finalStatus(results: readonly RecordResult[]): JobStatus {
  const failed = results.filter((r) => r.status === 'error').length;
  const accepted = results.filter((r) => r.status === 'accepted').length;
  if (failed === results.length) return 'error';
  if (failed > 0) return 'partial';
  if (accepted > 0) return 'accepted';
  return 'success';
}

export function pendingRecordIndexes(job: Job): number[] {
  const out: number[] = [];
  job.results.forEach((r, i) => {
    if (!r) out.push(i);
  });
  return out;
}

/** What GET /api/task-sync/status/:jobId answers. */
export function jobView(job: Job) {
  const done = job.results.filter((r): r is RecordResult => r !== null);
  return {
    jobId: job.id,
    status: job.status,
    mode: job.mode,
    total: job.records.length,
    done: done.length,
    results: done,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    completedAt: job.completedAt,
  };
}
