import { DEMO } from './settings.js';
import { callApi, until, type StepContext } from './step-context.js';
import { brief } from './transcript.js';

const RECORDS = ['rec-1001', 'rec-1002', 'rec-1003'];

/**
 * Job 3: a task-sync batch. A client triggers a slow Anycross integration flow for three records,
 * gets 202 and a job id at once, and polls the job's status while the service calls the (fake)
 * Anycross trigger for each record.
 */
export async function taskSyncStep(ctx: StepContext): Promise<void> {
  const { w, t } = ctx;
  const webhookUrl = `${w.anycross.url}${DEMO.anycrossPath}`;
  const request = { webhookUrl, records: RECORDS, timeout: 10 };
  t.line('→', `client → POST /api/task-sync (bearer token)\n${brief(request)}`);
  const created = await callApi(ctx, '/api/task-sync', request);
  t.line('←', `${created.status} ${brief(created.json)}`);
  if (created.status !== 202) throw new Error(`POST /api/task-sync answered ${created.status}: ${brief(created.json)}`);

  let last = '';
  const job = await until(ctx, `job ${created.json.jobId} finishing`, async () => {
    const status = await callApi(ctx, `/api/task-sync/status/${created.json.jobId}`);
    const line = `${status.json?.status} (${status.json?.done ?? 0}/${status.json?.total ?? RECORDS.length} done)`;
    if (line !== last) {
      t.line('↔', `client → GET /api/task-sync/status/${String(created.json.jobId).slice(0, 8)}… → ${status.status} ${line}`);
      last = line;
    }
    return ['success', 'error', 'partial', 'accepted'].includes(status.json?.status) ? status.json : undefined;
  });
  for (const r of job.results as Array<{ recordId: string; status: string; httpStatus?: number; attempts: number; response?: string }>) {
    t.line('·', `${r.recordId}: ${r.status}, HTTP ${r.httpStatus}, ${r.attempts} call(s), Anycross answered ${r.response}`);
  }
  const calls = w.anycross.calls;
  t.line('·', `the fake Anycross trigger got ${calls.length} calls, each {"recordId": …} with X-Bridge-Job-Id and Idempotency-Key headers`);
  if (job.status !== 'success') throw new Error(`the task-sync job ended ${job.status}: ${brief(job.results)}`);
  t.line('✓', `job ${job.status}: ${job.results.length} records synced`);
}
