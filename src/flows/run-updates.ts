import type { ApprovalInstance, ApprovalTask } from '../lark/approval.js';
import type { BusinessResult } from './business-call.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { FieldMappingError, mapFormFields } from './map-fields.js';
import { retryStageOf } from './progress-card.js';
import type { InboxItem } from './run-inbox.js';
import { failureKey, type Run, type StepName } from './run.js';

/**
 * How inbox items change a run. Pure functions of (run, item, now): the run's chain applies them
 * in arrival order, and applying one twice changes nothing the second time.
 */
export const STAGES: Stage[] = ['check', 'execute'];

type TaskItem = Extract<InboxItem, { kind: 'task' }>;

export function addStep(run: Run, step: StepName, at: string, detail?: string): void {
  run.steps.push({ at, step, ...(detail ? { detail } : {}) });
}

export function newRun(item: TaskItem, now: string): Run {
  return {
    id: item.runId,
    flowId: item.flowId,
    approvalCode: item.approvalCode,
    instanceCode: item.runId,
    applicant: {},
    stages: {},
    steps: [{ at: now, step: 'submitted' }],
    status: 'active',
    createdAt: now,
    updatedAt: now,
  };
}

/** A Retry press: applies only while the run still shows the failure the presser saw. */
export function applyRetry(run: Run, flow: ApprovalFlow, item: Extract<InboxItem, { kind: 'retry' }>, now: string): void {
  const stage = item.stage;
  if (retryStageOf(run, flow) !== stage || failureKey(run, stage) !== item.seen) return;
  if (run.larkFailure) {
    // The business already answered: only the refused Lark step is tried again.
    addStep(run, stage === 'check' ? 'checking' : 'executing', now, `retry: ${run.larkFailure.step}`);
    delete run.larkFailure;
  } else {
    const s = run.stages[stage]!;
    s.state = 'pending';
    s.retries++;
    delete s.decision;
    delete s.callbackDeadline;
  }
  run.status = 'active';
  delete run.error;
}

/**
 * Another task's status (https://open.feishu.cn/document/server-docs/approval-v4/event/common-event/approval-task-event).
 * Answers 'end-check' when the approval may have ended without us (REJECTED, DONE): that needs a
 * look at the instance, which the chain does.
 */
export function applyStatus(run: Run, item: Extract<InboxItem, { kind: 'status' }>, now: string): 'end-check' | 'applied' {
  switch (item.status) {
    case 'REJECTED':
    case 'DONE':
      return run.status === 'active' ? 'end-check' : 'applied';
    case 'ROLLBACK':
      // The returned-to node's new PENDING task (ours or a person's) comes as its own event.
      if (run.status === 'active' && run.steps.at(-1)?.step !== 'returned') addStep(run, 'returned', now, 'an approver returned the approval to an earlier node');
      return 'applied';
    case 'OVERTIME_CLOSE':
      if (run.status === 'active') closeRun(run, now);
      return 'applied';
    case 'OVERTIME_RECOVER':
      if (run.status === 'closed') {
        run.status = 'active';
        delete run.error;
        addStep(run, 'recovered', now, 'the timed-out task was reopened in Lark');
      }
      return 'applied';
    default:
      return 'applied';
  }
}

/** The approval ended in Lark without us: rejected by an approver, withdrawn, deleted. */
export function endIfInstanceEnded(run: Run, instanceStatus: string, now: string): boolean {
  if (instanceStatus === 'PENDING' || instanceStatus === 'APPROVED') return false;
  const why =
    instanceStatus === 'REJECTED' ? 'rejected by an approver' : instanceStatus === 'CANCELED' ? 'withdrawn by the applicant' : `approval ${instanceStatus.toLowerCase()}`;
  run.status = 'failed';
  run.error = why;
  addStep(run, 'failed', now, why);
  return true;
}

function closeRun(run: Run, now: string): void {
  run.status = 'closed';
  run.error = 'the approval task timed out in Lark and was closed';
  const unsaid = STAGES.find((s) => run.stages[s]?.state === 'decided');
  const detail = unsaid ? `${run.error}; the ${unsaid} result not yet told to Lark: ${run.stages[unsaid]!.decision!.comment}` : run.error;
  addStep(run, 'closed', now, detail);
}

/**
 * New PENDING tasks of the assistant, looked up in the instance: a task at a node the flow
 * handles opens its stage; a new task at a stage already done is a return (ROLLBACK) to that node
 * and runs the stage again. A run with no handled stage is set aside as ignored.
 */
export function addNewTasks(run: Run, flow: ApprovalFlow, instance: ApprovalInstance, items: TaskItem[], now: string): void {
  run.serialNumber = instance.serialNumber;
  run.applicant = { userId: instance.userId, openId: instance.openId };
  const opened: Stage[] = [];
  for (const item of items) {
    const task = instance.tasks.find((t) => t.id === item.taskId);
    const stage = task && stageOf(flow, task);
    if (!task || !stage || task.status !== 'PENDING') continue;
    const s = run.stages[stage];
    if (s?.taskId === task.id) continue;
    if (s) {
      if (run.steps.at(-1)?.step !== 'returned') addStep(run, 'returned', now, `returned to ${flow.nodes[stage]}`);
      run.stages[stage] = { taskId: task.id, state: 'pending', retries: 0, rounds: (s.rounds ?? 0) + 1 };
    } else {
      run.stages[stage] = { taskId: task.id, state: 'pending', retries: 0 };
    }
    opened.push(stage);
    if (run.status !== 'active') {
      run.status = 'active';
      delete run.error;
      delete run.larkFailure;
    }
  }
  if (opened.length) mapFields(run, flow, instance, opened);
  if (!STAGES.some((s) => run.stages[s])) run.status = 'ignored'; // a task of ours, but not at a node this flow handles
}

/** Maps the form (again on a return: the form may have changed). A bad form rejects the opened stages. */
function mapFields(run: Run, flow: ApprovalFlow, instance: ApprovalInstance, opened: Stage[]): void {
  try {
    run.fields = mapFormFields(instance.form, flow.fields);
  } catch (err) {
    if (!(err instanceof FieldMappingError)) throw err;
    run.fields ??= {};
    for (const stage of opened) {
      run.stages[stage]!.decision = { approve: false, comment: `The request cannot be processed: ${err.message}`, error: err.message };
      run.stages[stage]!.state = 'decided';
    }
  }
}

function stageOf(flow: ApprovalFlow, task: ApprovalTask): Stage | undefined {
  for (const stage of STAGES) {
    const node = flow.nodes[stage];
    if (node && (task.nodeName === node || task.customNodeId === node || task.nodeId === node)) return stage;
  }
  return undefined;
}

export function verdict(result: BusinessResult): { approve: boolean; comment: string; error?: string } {
  if (result.result) return { approve: true, comment: result.msg || 'OK' };
  const reason = result.error || result.msg || 'refused by the business system';
  return { approve: false, comment: reason, error: reason };
}
