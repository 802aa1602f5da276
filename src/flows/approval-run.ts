import type { Clock } from '../clock.js';
import type { ApprovalApi, ApprovalTask } from '../lark/approval.js';
import type { Messenger } from '../lark/messages.js';
import type { Logger } from '../log.js';
import type { RecordCollection } from '../store/store.js';
import type { UpstreamClient } from '../upstream/client.js';
import { callBusiness, type BusinessResult } from './business-call.js';
import type { CallbackTimers } from './callback-timers.js';
import type { FlowRegistry } from './flow-registry.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { FieldMappingError, mapFormFields } from './map-fields.js';
import { syncProgressCard } from './progress-card.js';
import type { Run, StageRun, StepName } from './run.js';

export const STAGES: Stage[] = ['check', 'execute'];

export interface RunDeps {
  runs: RecordCollection<Run>;
  flows: FlowRegistry;
  approvals: ApprovalApi;
  messenger: Messenger;
  upstream: UpstreamClient;
  clock: Clock;
  logger: Logger;
  assistantUserId?: string;
  publicBaseUrl: string;
  templatesDir: string;
  approvalLink: (instanceCode: string) => string;
}

/**
 * One approval run, told top to bottom in `advance`: look up new tasks → map the form → call
 * the business API → record the verdict → act in Lark → update the card. Every step is
 * persisted before the next one starts.
 */
export class RunStory {
  constructor(
    private readonly o: RunDeps,
    private readonly timers: CallbackTimers,
    private readonly schedule: (runId: string) => void,
  ) {}

  /** The story of a run. Each step persists before the next one starts. */
  async advance(runId: string): Promise<void> {
    const run = await this.o.runs.get(runId);
    if (!run || run.status !== 'active') return;
    const flow = this.flowOf(run);
    if (!flow) {
      this.o.logger.warn({ runId, flow: run.flowId }, 'flow not loaded; the run waits');
      return;
    }
    await this.lookUpNewTasks(run, flow);
    if (run.status !== 'active') return;
    if (!run.cardMessageId) await this.updateCard(run, flow);

    for (const stage of STAGES) {
      const s = run.stages[stage];
      if (!s || s.state === 'acted') continue;
      if (s.state === 'pending' || s.state === 'calling') await this.callStage(run, flow, stage, s);
      if (s.state === 'waiting_callback') this.armCallbackTimer(run, stage, s);
      if (s.state === 'decided') await this.act(run, flow, stage, s);
      if (run.status !== 'active') break;
    }
  }

  /** Closes a run whose approval ended in Lark without us (rejected by an approver, withdrawn). */
  async closeIfEnded(runId: string): Promise<void> {
    const run = await this.o.runs.get(runId);
    if (!run || run.status !== 'active' || run.inbox.length) return;
    const busy = STAGES.some((s) => run.stages[s] && run.stages[s]!.state !== 'acted');
    if (busy) return; // our own stage is still working; it finds the task closed when it acts
    const instance = await this.o.approvals.getInstance(run.instanceCode);
    if (instance.status === 'PENDING' || instance.status === 'APPROVED') return;
    const why = instance.status === 'REJECTED' ? 'rejected by an approver' : instance.status === 'CANCELED' ? 'withdrawn by the applicant' : `approval ${instance.status.toLowerCase()}`;
    run.status = 'failed';
    run.error = why;
    this.step(run, 'failed', why);
    await this.save(run);
    const flow = this.flowOf(run);
    if (flow) await this.updateCard(run, flow);
    await this.o.runs.archive(run);
  }

  private async lookUpNewTasks(run: Run, flow: ApprovalFlow): Promise<void> {
    if (run.inbox.length === 0) return;
    const instance = await this.o.approvals.getInstance(run.instanceCode);
    run.serialNumber = instance.serialNumber;
    run.applicant = { userId: instance.userId, openId: instance.openId };
    for (const taskId of run.inbox) {
      const task = instance.tasks.find((t) => t.id === taskId);
      const stage = task && stageOf(flow, task);
      if (!task || !stage || task.status !== 'PENDING' || run.stages[stage]) continue;
      run.stages[stage] = { taskId, state: 'pending', retries: 0 };
      if (run.fields === undefined) {
        try {
          run.fields = mapFormFields(instance.form, flow.fields);
        } catch (err) {
          if (!(err instanceof FieldMappingError)) throw err;
          run.fields = {};
          run.stages[stage]!.decision = { approve: false, comment: `The request cannot be processed: ${err.message}`, error: err.message };
          run.stages[stage]!.state = 'decided';
        }
      }
    }
    run.inbox = [];
    if (!STAGES.some((s) => run.stages[s])) {
      run.status = 'ignored'; // a task of ours, but not at a node this flow handles
      await this.o.runs.archive(run);
      return;
    }
    await this.save(run);
  }

  private async callStage(run: Run, flow: ApprovalFlow, stage: Stage, s: StageRun): Promise<void> {
    const spec = flow[stage]!;
    if (s.state === 'pending') {
      this.step(run, stage === 'check' ? 'checking' : 'executing', s.retries ? `retry ${s.retries}` : undefined);
      s.state = 'calling';
      await this.save(run);
      await this.updateCard(run, flow);
    }
    const outcome = await callBusiness(
      this.o.upstream,
      this.o.clock,
      spec,
      flow.secret,
      {
        ticket_id: run.instanceCode,
        flow: flow.id,
        stage,
        fields: run.fields ?? {},
        applicant: { user_id: run.applicant.userId, open_id: run.applicant.openId },
        ...(spec.mode === 'async' ? { callback_url: `${this.o.publicBaseUrl}/api/v1/lark/${stage}/callback` } : {}),
      },
      `${run.instanceCode}:${stage}:${s.taskId}:${s.retries}`,
    );
    if (outcome.kind === 'accepted') {
      s.state = 'waiting_callback';
      s.callbackDeadline = this.o.clock.now() + spec.callbackTimeoutMs;
    } else if (outcome.kind === 'result') {
      s.decision = verdict(outcome.result);
      s.state = 'decided';
    } else {
      s.decision = {
        approve: false,
        comment: `The ${stage} service could not be reached (${outcome.attempts} tries): ${outcome.error}. Nothing was approved.`,
        error: `service unreachable: ${outcome.error}`,
      };
      s.state = 'decided';
    }
    await this.save(run);
  }

  private armCallbackTimer(run: Run, stage: Stage, s: StageRun): void {
    this.timers.arm(run.id, stage, Math.max(0, (s.callbackDeadline ?? 0) - this.o.clock.now()), () => void this.expireCallback(run.id, stage));
  }

  private async expireCallback(runId: string, stage: Stage): Promise<void> {
    const run = await this.o.runs.get(runId);
    const s = run?.stages[stage];
    if (!run || !s || s.state !== 'waiting_callback') return;
    const flow = this.flowOf(run);
    const waited = flow?.[stage]?.callbackTimeoutMs ?? 0;
    s.decision = { approve: false, comment: `The ${stage} service did not report back within ${Math.round(waited / 1000)} s. Nothing was approved.`, error: 'no callback in time' };
    s.state = 'decided';
    await this.save(run);
    this.schedule(run.id);
  }

  /** Tells Lark the verdict, once: a task that is no longer PENDING was already acted on. */
  private async act(run: Run, flow: ApprovalFlow, stage: Stage, s: StageRun): Promise<void> {
    const decision = s.decision!;
    const instance = await this.o.approvals.getInstance(run.instanceCode);
    const task = instance.tasks.find((t) => t.id === s.taskId);
    let note: string | undefined;
    if (task?.status === 'PENDING') {
      const action = { approvalCode: run.approvalCode, instanceCode: run.instanceCode, taskId: s.taskId, userId: task.userId ?? this.o.assistantUserId ?? '', comment: decision.comment };
      if (decision.approve) await this.o.approvals.approve(action);
      else await this.o.approvals.reject(action);
    } else {
      note = `approval already ${task?.status?.toLowerCase() ?? 'closed'} in Lark`;
    }
    s.state = 'acted';
    if (stage === 'check') {
      if (decision.approve) {
        this.step(run, 'check_passed', decision.comment || note);
        if (flow.execute) this.step(run, 'waiting_approvers');
        else run.status = 'done';
      } else {
        this.step(run, 'check_failed', decision.error ?? decision.comment);
        run.status = 'failed';
        run.error = decision.error ?? decision.comment;
      }
    } else if (decision.approve) {
      this.step(run, 'done', decision.comment || note);
      run.status = 'done';
    } else {
      this.step(run, 'failed', decision.error ?? decision.comment);
      run.status = 'failed';
      run.error = decision.error ?? decision.comment;
    }
    await this.save(run);
    await this.updateCard(run, flow);
    if (run.status !== 'active') await this.o.runs.archive(run);
  }

  /** Sends the run's one card on its first step, then patches that same card. Never fails a run. */
  private async updateCard(run: Run, flow: ApprovalFlow): Promise<void> {
    if (await syncProgressCard(run, flow, this.o)) await this.save(run);
  }

  private step(run: Run, step: StepName, detail?: string): void {
    run.steps.push({ at: this.isoNow(), step, ...(detail ? { detail } : {}) });
  }

  async save(run: Run): Promise<void> {
    run.updatedAt = this.isoNow();
    await this.o.runs.put(run);
  }

  flowOf(run: Run): ApprovalFlow | undefined {
    return this.o.flows.approvalFlowFor(run.approvalCode);
  }

  private isoNow(): string {
    return new Date(this.o.clock.now()).toISOString();
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
