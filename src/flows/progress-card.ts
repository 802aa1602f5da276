import type { CardVars } from '../lark/card-template.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { STEP_LABELS, type Run } from './run.js';

const STEP_ICONS: Record<string, string> = {
  submitted: '📝',
  checking: '🔎',
  check_passed: '✅',
  check_failed: '⛔',
  waiting_approvers: '⏳',
  executing: '⚙️',
  done: '🎉',
  failed: '❌',
};

/** The variables of the progress card template for a run as it stands now. */
export function progressCardVars(run: Run, flow: ApprovalFlow, approvalLink: string): CardVars {
  const last = run.steps.at(-1)?.step ?? 'submitted';
  const failedStage = failedStageOf(run);
  const fields = Object.entries(run.fields ?? {})
    .map(([k, v]) => `**${k}**: ${formatValue(v)}`)
    .join('\n');
  const steps = run.steps
    .map((s) => `${STEP_ICONS[s.step] ?? '•'} ${STEP_LABELS[s.step]} · ${s.at.slice(11, 19)} UTC${s.detail ? ` — ${s.detail}` : ''}`)
    .join('\n');
  return {
    runId: run.id,
    flowName: flow.name,
    statusText: STEP_LABELS[last],
    headerColor: run.status === 'done' ? 'green' : run.status === 'failed' ? 'red' : 'blue',
    applicant: run.applicant.openId ? `<at id=${run.applicant.openId}></at>` : (run.applicant.userId ?? 'unknown'),
    serialNumber: run.serialNumber ?? run.instanceCode,
    fieldsMarkdown: fields || '_no mapped fields yet_',
    stepsMarkdown: steps,
    error: run.status === 'failed' ? (run.error ?? 'failed') : '',
    approvalLink,
    canRetry: Boolean(failedStage && (flow.notify?.retryBy.length ?? 0) > 0),
    retryStage: failedStage ?? '',
  };
}

/** The stage whose business call failed, if the run failed there. */
export function failedStageOf(run: Run): Stage | undefined {
  if (run.status !== 'failed') return undefined;
  for (const stage of ['execute', 'check'] as const) {
    const s = run.stages[stage];
    if (s?.decision && !s.decision.approve) return stage;
  }
  return undefined;
}

function formatValue(v: unknown): string {
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  if (v && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
