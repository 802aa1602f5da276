import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import { renderCard, type CardVars } from '../lark/card-template.js';
import { LarkApiError } from '../lark/lark-error.js';
import type { Messenger } from '../lark/messages.js';
import type { Logger } from '../log.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { failedStageOf, STEP_LABELS, type Run } from './run.js';

const STEP_ICONS: Record<string, string> = {
  submitted: '📝',
  checking: '🔎',
  check_passed: '✅',
  check_failed: '⛔',
  waiting_approvers: '⏳',
  executing: '⚙️',
  done: '🎉',
  failed: '❌',
  returned: '↩️',
  closed: '🔒',
  recovered: '🔓',
};

const DAY_MS = 86_400_000;
// Lark updates a card only within 14 days of sending it; an hour before that we send a fresh one
// rather than race the limit. https://open.feishu.cn/document/server-docs/im-v1/message-card/patch
const CARD_UPDATE_WINDOW_MS = 14 * DAY_MS - 3_600_000;
// Patch refusals that mean "this message can no longer be updated": 230031 older than 14 days,
// 230011 recalled, 230110 deleted (same page, error codes). A new card takes over.
const CARD_GONE_CODES = new Set([230031, 230011, 230110]);

/** The stage a Retry press re-runs on this run, given the flow's first stage. */
export function retryStageOf(run: Run, flow: ApprovalFlow): Stage | undefined {
  return failedStageOf(run, flow.check ? 'check' : 'execute');
}

/** The variables of the progress card template for a run as it stands now. */
export function progressCardVars(run: Run, flow: ApprovalFlow, approvalLink: string): CardVars {
  const last = run.steps.at(-1)?.step ?? 'submitted';
  const retryStage = retryStageOf(run, flow);
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
    headerColor: run.status === 'done' ? 'green' : run.status === 'failed' ? 'red' : run.status === 'closed' ? 'grey' : 'blue',
    applicant: run.applicant.openId ? `<at id=${run.applicant.openId}></at>` : (run.applicant.userId ?? 'unknown'),
    serialNumber: run.serialNumber ?? run.instanceCode,
    fieldsMarkdown: fields || '_no mapped fields yet_',
    stepsMarkdown: steps,
    error: run.status === 'failed' || run.status === 'closed' ? (run.error ?? run.status) : '',
    approvalLink,
    canRetry: Boolean(retryStage && (flow.notify?.retryBy.length ?? 0) > 0),
    retryStage: retryStage ?? '',
  };
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
  clock: Clock;
  approvalLink: (instanceCode: string) => string;
}

/**
 * Sends the run's card on its first step, then patches that same card; a card too old to update
 * (or deleted) is replaced by a new one that later steps patch. Answers true when a card was just
 * sent (the run now holds its message id and must be saved). A card failure is logged and never
 * fails the run.
 */
export async function syncProgressCard(run: Run, flow: ApprovalFlow, d: CardDeps): Promise<boolean> {
  if (!flow.notify) return false;
  try {
    const card = await renderCard(d.templatesDir, flow.notify.template, progressCardVars(run, flow, d.approvalLink(run.instanceCode)));
    if (run.cardMessageId && !tooOldToUpdate(run, d.clock.now())) {
      try {
        await d.messenger.patchCard(run.cardMessageId, card);
        return false;
      } catch (err) {
        if (!(err instanceof LarkApiError && CARD_GONE_CODES.has(err.code))) throw err;
        d.logger.warn({ runId: run.id, code: err.code }, 'progress card can no longer be updated; sending a new one');
      }
    }
    const count = run.cardCount ?? (run.cardMessageId ? 1 : 0);
    // A uuid derived from the run and the card's number: a resend after a crash is dropped by
    // Lark (same uuid within an hour), not a second card.
    const uuid = createHash('sha256').update(`card:${run.id}:${count}`).digest('hex').slice(0, 32);
    run.cardMessageId = (await d.messenger.sendToChat(flow.notify.chatId, 'interactive', card, uuid)).messageId;
    run.cardSentAt = new Date(d.clock.now()).toISOString();
    run.cardCount = count + 1;
    return true;
  } catch (err) {
    d.logger.error({ err, runId: run.id }, 'progress card could not be sent or updated');
    return false;
  }
}

/** A card whose send time is unknown (older records) is tried; Lark's refusal then replaces it. */
function tooOldToUpdate(run: Run, now: number): boolean {
  const sent = run.cardSentAt ? Date.parse(run.cardSentAt) : NaN;
  return Number.isFinite(sent) && now - sent >= CARD_UPDATE_WINDOW_MS;
}
