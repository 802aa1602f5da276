import { createHash } from 'node:crypto';
import { renderCard, type CardVars } from '../lark/card-template.js';
import type { Messenger } from '../lark/messages.js';
import type { Logger } from '../log.js';
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

export interface CardDeps {
  messenger: Messenger;
  templatesDir: string;
  logger: Logger;
  approvalLink: (instanceCode: string) => string;
}

/**
 * Sends the run's one card on its first step, then patches that same card. Answers true when a
 * card was just sent (the run now holds its message id and must be saved). A card failure is
 * logged and never fails the run.
 */
export async function syncProgressCard(run: Run, flow: ApprovalFlow, d: CardDeps): Promise<boolean> {
  if (!flow.notify) return false;
  try {
    const card = await renderCard(d.templatesDir, flow.notify.template, progressCardVars(run, flow, d.approvalLink(run.instanceCode)));
    if (run.cardMessageId) {
      await d.messenger.patchCard(run.cardMessageId, card);
      return false;
    }
    // A uuid derived from the run: a resend after a crash is dropped by Lark, not a second card.
    const uuid = createHash('sha256').update(`card:${run.id}`).digest('hex').slice(0, 32);
    run.cardMessageId = (await d.messenger.sendToChat(flow.notify.chatId, 'interactive', card, uuid)).messageId;
    return true;
  } catch (err) {
    d.logger.error({ err, runId: run.id }, 'progress card could not be sent or updated');
    return false;
  }
}
