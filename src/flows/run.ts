import type { Stage } from './flow-schema.js';

/**
 * One approval instance's run through a flow, persisted at every step so that a redelivered
 * event, a duplicate callback or a restart never repeats a side effect.
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
  /** How often the stage was re-run from the card's Retry button. */
  retries: number;
}

export type StepName =
  | 'submitted'
  | 'checking'
  | 'check_passed'
  | 'check_failed'
  | 'waiting_approvers'
  | 'executing'
  | 'done'
  | 'failed';

export interface Run {
  id: string; // the approval instance code
  flowId: string;
  approvalCode: string;
  instanceCode: string;
  serialNumber?: string;
  applicant: { userId?: string; openId?: string };
  fields?: Record<string, unknown>;
  /** Task ids from events not yet looked up. */
  inbox: string[];
  stages: Partial<Record<Stage, StageRun>>;
  steps: Array<{ at: string; step: StepName; detail?: string }>;
  cardMessageId?: string;
  status: 'active' | 'done' | 'failed' | 'ignored';
  error?: string;
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
};
