import type { Clock } from '../clock.js';
import type { ApprovalApi, ApprovalInstance } from '../lark/approval.js';
import { LarkApiError } from '../lark/lark-error.js';
import type { Messenger } from '../lark/messages.js';
import type { Logger } from '../log.js';
import type { RecordCollection } from '../store/store.js';
import type { UpstreamClient } from '../upstream/client.js';
import { businessIdempotencyKey, businessRequest, callBusiness } from './business-call.js';
import type { CallbackTimers } from './callback-timers.js';
import type { FlowRegistry } from './flow-registry.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { syncProgressCard } from './progress-card.js';
import type { InboxItem, RunInbox } from './run-inbox.js';
import { addNewTasks, addStep, applyRetry, applyStatus, endIfInstanceEnded, newRun, STAGES, verdict } from './run-updates.js';
import { nextStamp, type LarkFailure, type Run, type StageRun, type StepName } from './run.js';
import { InstanceReads } from './instance-reads.js';
import { RunLockLost, type TurnResult } from './run-turns.js';

export interface RunDeps {
  runs: RecordCollection<Run>;
  inbox: RunInbox;
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
  /** Jitter of the business-call backoff (tests pin it). */
  random?: () => number;
  /** Told of each run that reaches an end state, once it is archived (metrics, GET /api/status). */
  runEnded?: (run: Readonly<Run>) => void;
}

/**
 * One approval run, told top to bottom in `advance`: take the inbox (new tasks, callbacks,
 * Retry presses, status changes) → look up new tasks → call the business API → record the
 * verdict → act in Lark → update the card. It runs only inside the run's chain, so it is the one
 * writer of the run record; every step is saved before the next side effect.
 */
export class RunStory {
  /** The lock of each run being advanced here (one turn per run at a time in this process). */
  private readonly fences = new Map<string, AbortSignal>();
  /** Instance reads that wait for an event's task to show (stopped with the service). */
  private readonly reads: InstanceReads;

  constructor(
    private readonly o: RunDeps,
    private readonly timers: CallbackTimers,
    private readonly schedule: (runId: string) => void,
  ) {
    this.reads = new InstanceReads(o.clock, o.logger);
  }

  /**
   * One turn of the run. `fence` is the run's lock (approval-engine.ts): once it is lost, another
   * replica may be advancing the run, so no further step is saved or started here. Answers the
   * inbox items the turn read and the run as the turn left it (undefined: none, or ended).
   */
  async advance(runId: string, fence?: AbortSignal): Promise<TurnResult> {
    if (fence) this.fences.set(runId, fence);
    try {
      const items = await this.o.inbox.forRun(runId);
      const run = await this.turn(runId, items);
      return { seen: items.map((i) => i.id), run: run?.status === 'active' ? run : undefined };
    } finally {
      if (this.fences.get(runId) === fence) this.fences.delete(runId);
    }
  }

  private async turn(runId: string, items: InboxItem[]): Promise<Run | undefined> {
    const loaded = await this.load(runId);
    const firstTask = items.find((i) => i.kind === 'task');
    if (!loaded && !firstTask) {
      await Promise.all(this.o.inbox.remove(items.map((i) => i.id))); // news of a run that never started
      return undefined;
    }
    const run = loaded ?? newRun(firstTask as Extract<InboxItem, { kind: 'task' }>, this.isoNow());
    const flow = this.flowOf(run);
    if (!flow) {
      this.o.logger.warn({ runId, flow: run.flowId }, 'flow not loaded; the run waits');
      return loaded;
    }
    const before = loaded ? JSON.stringify(loaded) : '';
    const applied = await this.takeInbox(run, flow, items);
    const changed = JSON.stringify(run) !== before;

    if (run.status !== 'active') {
      if (changed) {
        for (const stage of STAGES) this.timers.clear(run.id, stage);
        if (run.status !== 'ignored') await this.updateCard(run, flow);
        await this.archive(run);
      }
      await Promise.all(this.o.inbox.remove(applied));
      return run;
    }
    if (changed || applied.length) await this.save(run, applied);
    if (changed || !run.cardMessageId) await this.updateCard(run, flow);

    for (const stage of STAGES) {
      const s = run.stages[stage];
      if (!s || s.state === 'acted') continue;
      if (s.state === 'pending' || s.state === 'calling') await this.callStage(run, flow, stage, s);
      if (s.state === 'waiting_callback') await this.collectCallback(run, flow, stage, s);
      if (s.state === 'decided') await this.act(run, flow, stage, s);
      if (run.status !== 'active') break;
    }
    return run;
  }

  /** Applies the run's inbox items in arrival order; answers the ids of those fully applied. */
  private async takeInbox(run: Run, flow: ApprovalFlow, items: InboxItem[]): Promise<string[]> {
    const applied: string[] = [];
    const endChecks: string[] = [];
    const now = this.isoNow();
    for (const item of items) {
      if (item.kind === 'retry') applyRetry(run, flow, item, now);
      else if (item.kind === 'status' && applyStatus(run, item, now) === 'end-check') {
        endChecks.push(item.id);
        continue;
      }
      if (item.kind !== 'task') applied.push(item.id);
    }
    const tasks = items.filter((i): i is Extract<InboxItem, { kind: 'task' }> => i.kind === 'task');
    // A run whose approval could not be looked up waits for Retry; its task items wait with it.
    const lookupFailed = run.status === 'failed' && run.larkFailure && !run.larkFailure.stage;
    if (tasks.length && !lookupFailed) {
      const instance = await this.reads.showing(run, tasks, () => this.lookUp(run), this.fences.get(run.id));
      if (instance) {
        addNewTasks(run, flow, instance, tasks, this.isoNow());
        applied.push(...tasks.map((t) => t.id));
      }
    }
    if (endChecks.length && (run.status !== 'active' || (await this.closeIfEnded(run)) !== 'unknown')) applied.push(...endChecks);
    return applied;
  }

  /** The service is stopping: a turn waiting to read an instance again ends now. */
  stop(): void {
    this.reads.stop();
  }

  private async lookUp(run: Run): Promise<ApprovalInstance | undefined> {
    try {
      return await this.o.approvals.getInstance(run.instanceCode);
    } catch (err) {
      if (!(err instanceof LarkApiError)) throw err;
      this.failAtLark(run, undefined, 'look up the approval', err);
      return undefined;
    }
  }

  /** An approver rejected, or the applicant withdrew: the run waiting on approvers ends. */
  private async closeIfEnded(run: Run): Promise<'ended' | 'open' | 'unknown'> {
    // Our own stage still working finds the task closed when it acts.
    if (STAGES.some((s) => run.stages[s] && run.stages[s]!.state !== 'acted')) return 'open';
    let instance: ApprovalInstance;
    try {
      instance = await this.o.approvals.getInstance(run.instanceCode);
    } catch (err) {
      if (!(err instanceof LarkApiError)) throw err;
      this.o.logger.warn({ err, runId: run.id }, 'could not look up an approval that may have ended; tried again on the next event or restart');
      return 'unknown';
    }
    return endIfInstanceEnded(run, instance.status, this.isoNow()) ? 'ended' : 'open';
  }

  private async callStage(run: Run, flow: ApprovalFlow, stage: Stage, s: StageRun): Promise<void> {
    const spec = flow[stage]!;
    // A crash during our call: if the result came by callback meanwhile, there is nothing to call.
    const came = s.state === 'calling' && spec.mode === 'async' ? await this.o.inbox.callbackFor(run.id, stage, s) : undefined;
    if (came) {
      s.decision = verdict(came);
      s.state = 'decided';
      await this.save(run);
      return;
    }
    if (s.state === 'pending') {
      const again = [s.retries ? `retry ${s.retries}` : '', s.rounds ? `round ${s.rounds + 1}` : ''].filter(Boolean).join(', ');
      this.step(run, stage === 'check' ? 'checking' : 'executing', again || undefined);
      s.state = 'calling';
      await this.save(run);
      await this.updateCard(run, flow);
    }
    this.checkFence(run);
    const attemptId = businessIdempotencyKey(run.instanceCode, stage, s.taskId, s.retries);
    const outcome = await callBusiness(
      { upstream: this.o.upstream, clock: this.o.clock, random: this.o.random },
      spec,
      flow.secret,
      businessRequest(flow, stage, run, this.o.publicBaseUrl, attemptId),
      attemptId,
    );
    // An async API may call back before answering our call: its result wins over how the call went.
    const early = spec.mode === 'async' ? await this.o.inbox.callbackFor(run.id, stage, s) : undefined;
    if (early) {
      s.decision = verdict(early);
      s.state = 'decided';
    } else if (outcome.kind === 'accepted') {
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

  /** Takes the callback result if one came; past the deadline rejects; otherwise waits (timer). */
  private async collectCallback(run: Run, flow: ApprovalFlow, stage: Stage, s: StageRun): Promise<void> {
    const result = await this.o.inbox.callbackFor(run.id, stage, s);
    const now = this.o.clock.now();
    const deadline = s.callbackDeadline ?? 0;
    if (result) {
      s.decision = verdict(result);
    } else if (now >= deadline) {
      const waited = flow[stage]?.callbackTimeoutMs ?? 0;
      s.decision = { approve: false, comment: `The ${stage} service did not report back within ${Math.round(waited / 1000)} s. Nothing was approved.`, error: 'no callback in time' };
    } else {
      // The expiry is just another turn of the chain: a callback that arrived first wins.
      this.timers.arm(run.id, stage, deadline - now, () => this.schedule(run.id));
      return;
    }
    this.timers.clear(run.id, stage);
    s.state = 'decided';
    await this.save(run);
  }

  /** Tells Lark the verdict, once: a task that is no longer PENDING was already acted on. */
  private async act(run: Run, flow: ApprovalFlow, stage: Stage, s: StageRun): Promise<void> {
    const decision = s.decision!;
    let note: string | undefined;
    let step: LarkFailure['step'] = 'look up the approval';
    try {
      const instance = await this.o.approvals.getInstance(run.instanceCode);
      const task = instance.tasks.find((t) => t.id === s.taskId);
      this.checkFence(run);
      if (task?.status === 'PENDING') {
        const action = { approvalCode: run.approvalCode, instanceCode: run.instanceCode, taskId: s.taskId, userId: task.userId ?? this.o.assistantUserId ?? '', comment: decision.comment };
        step = decision.approve ? 'approve the task' : 'reject the task';
        if (decision.approve) await this.o.approvals.approve(action);
        else await this.o.approvals.reject(action);
      } else {
        note = `approval already ${task?.status?.toLowerCase() ?? 'closed'} in Lark`;
      }
    } catch (err) {
      if (!(err instanceof LarkApiError)) throw err;
      this.failAtLark(run, stage, step, err);
      await this.finish(run, flow);
      return;
    }
    s.state = 'acted';
    if (stage === 'check') {
      if (decision.approve) {
        this.step(run, 'check_passed', decision.comment || note);
        // A check task already closed in Lark (a Retry after the approval was rejected) leaves
        // nothing to wait for; a later task at execute_node brings the run back.
        if (flow.execute && !note) this.step(run, 'waiting_approvers');
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
    await this.finish(run, flow);
  }

  /** A Lark call refused for good: the run fails with the reason and Retry re-attempts that step. */
  private failAtLark(run: Run, stage: Stage | undefined, step: LarkFailure['step'], err: LarkApiError): void {
    const error = `Lark refused to ${step}: ${err.larkMsg || err.message} (code ${err.code})`;
    this.o.logger.error({ runId: run.id, stage, code: err.code }, error);
    run.status = 'failed';
    run.error = error;
    run.larkFailure = { ...(stage ? { stage } : {}), step, error, at: this.isoNow() };
    this.step(run, 'failed', error);
  }

  private async finish(run: Run, flow: ApprovalFlow): Promise<void> {
    await this.save(run);
    await this.updateCard(run, flow);
    if (run.status !== 'active') await this.archive(run);
  }

  /** Sends or updates the run's card. Never fails a run. */
  private async updateCard(run: Run, flow: ApprovalFlow): Promise<void> {
    if (await syncProgressCard(run, flow, this.o)) await this.save(run);
  }

  private step(run: Run, step: StepName, detail?: string): void {
    addStep(run, step, this.isoNow(), detail);
  }

  /** A private copy: the store may hand out the object it keeps, and only a save may change that. */
  private async load(runId: string): Promise<Run | undefined> {
    const stored = await this.o.runs.get(runId);
    return stored && structuredClone(stored);
  }

  /** Saves the run and drops the inbox items it now reflects, in one write. */
  private async save(run: Run, appliedItems: readonly string[] = []): Promise<void> {
    this.checkFence(run);
    // Strictly later than any earlier copy, so a run brought back from the archive is the newer one.
    run.updatedAt = nextStamp(this.o.clock.now(), run.updatedAt);
    await Promise.all([this.o.runs.put(structuredClone(run)), ...this.o.inbox.remove(appliedItems)]);
  }

  private async archive(run: Run): Promise<void> {
    this.checkFence(run);
    run.updatedAt = nextStamp(this.o.clock.now(), run.updatedAt);
    await this.o.runs.archive(structuredClone(run));
    this.o.runEnded?.(run);
  }

  private checkFence(run: Run): void {
    if (this.fences.get(run.id)?.aborted) throw new RunLockLost(run.id);
  }

  flowOf(run: Run): ApprovalFlow | undefined {
    return this.o.flows.approvalFlowFor(run.approvalCode);
  }

  private isoNow(): string {
    return new Date(this.o.clock.now()).toISOString();
  }
}
