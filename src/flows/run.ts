import type { Stage } from './flow-schema.js';

/**
 * One approval instance's run through a flow, persisted at every step so that a redelivered
 * event, a duplicate callback or a restart never repeats a side effect. Only the run's own
 * chain (approval-engine.ts) writes this record; intake writes inbox items (run-inbox.ts).
 *
 * A stage moves pending → calling → (waiting_callback →) decided → acted. "decided" holds the
 * verdict before Lark is told; "acted" means Lark approved or rejected the task.
 */
export type StageState = 'pending' | 'calling' | 'waiting_callback' | 'decided' | 'acted';

export interface StageRun {
  taskId: string;
  state: StageState;
  /** Set while waiting for an async callback (ms since epoch). */
  callbackDeadline?: number;
  decision?: { approve: boolean; comment: string; error?: string };
  /** How often the stage's business call was re-run from the card's Retry button. */
  retries: number;
  /** How often an approver returned the approval to this stage's node (ROLLBACK). */
  rounds?: number;
}

export type StepName =
  | 'submitted'
  | 'checking'
  | 'check_passed'
  | 'check_failed'
  | 'waiting_approvers'
  | 'executing'
  | 'done'
  | 'failed'
  | 'returned'
  | 'closed'
  | 'recovered';

/** A Lark call that was refused for good mid-step: Retry re-attempts that step, not the business call. */
export interface LarkFailure {
  /** The stage whose Lark step failed; absent when looking the approval up failed. */
  stage?: Stage;
  step: 'look up the approval' | 'approve the task' | 'reject the task';
  error: string;
  at: string;
}

export interface Run {
  id: string; // the approval instance code
  flowId: string;
  approvalCode: string;
  instanceCode: string;
  serialNumber?: string;
  applicant: { userId?: string; openId?: string };
  fields?: Record<string, unknown>;
  stages: Partial<Record<Stage, StageRun>>;
  steps: Array<{ at: string; step: StepName; detail?: string }>;
  cardMessageId?: string;
  /** When the current card was sent (ISO): Lark lets a card be updated for 14 days only. */
  cardSentAt?: string;
  /** Cards sent for this run so far (a new one replaces a card too old to update). */
  cardCount?: number;
  /** closed: Lark closed the approval (a task timed out, OVERTIME_CLOSE) before the run finished. */
  status: 'active' | 'done' | 'failed' | 'ignored' | 'closed';
  error?: string;
  larkFailure?: LarkFailure;
  createdAt: string;
  updatedAt: string;
}

export const STEP_LABELS: Record<StepName, string> = {
  submitted: 'Submitted',
  checking: 'Checking',
  check_passed: 'Check passed',
  check_failed: 'Check failed',
  waiting_approvers: 'Waiting for approvers',
  executing: 'Executing',
  done: 'Done',
  failed: 'Failed',
  returned: 'Returned',
  closed: 'Closed',
  recovered: 'Reopened',
};

/** The stage a Retry press re-runs when the run failed there (business refusal or a Lark step). */
export function failedStageOf(run: Run, firstStage: Stage = 'check'): Stage | undefined {
  if (run.status !== 'failed') return undefined;
  if (run.larkFailure) return run.larkFailure.stage ?? firstStage;
  for (const stage of ['execute', 'check'] as const) {
    const s = run.stages[stage];
    if (s?.decision && !s.decision.approve) return stage;
  }
  return undefined;
}

/**
 * What a Retry press saw: a press applies only while the run still shows that same failure, so
 * a second press (or a redelivered one) after the retry started does nothing.
 */
export function failureKey(run: Run, stage: Stage): string {
  const s = run.stages[stage];
  return JSON.stringify([stage, s?.taskId ?? '', s?.retries ?? 0, run.larkFailure?.at ?? '']);
}

/** ISO time strictly after `previous`: two copies of a record (live, archived) never tie. */
export function nextStamp(nowMs: number, previous?: string): string {
  const prev = previous ? Date.parse(previous) : NaN;
  return new Date(Number.isFinite(prev) && prev >= nowMs ? prev + 1 : nowMs).toISOString();
}
