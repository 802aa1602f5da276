import { Conflict } from '../errors.js';
import type { ApprovalTaskEvent } from '../lark/event-intake.js';
import type { BusinessResult } from './business-call.js';
import type { Stage } from './flow-schema.js';
import { CallbackTimers } from './callback-timers.js';
import { failedStageOf } from './progress-card.js';
import { RunStory, STAGES, verdict, type RunDeps } from './approval-run.js';
import type { Run } from './run.js';


/**
 * The way in for approval work: task events, async callbacks, the Retry button, restarts.
 * Each run's steps (approval-run.ts) are serialised per run, so a repeated event, callback or
 * restart does not repeat a side effect.
 */
export class ApprovalEngine {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly timers = new CallbackTimers();
  private readonly story: RunStory;
  private stopped = false;

  constructor(private readonly o: RunDeps) {
    this.story = new RunStory(o, this.timers, (runId) => this.schedule(runId));
  }

  /** Records a task event durably (Lark may then get its 200) and schedules the work. */
  async acceptTaskEvent(ev: ApprovalTaskEvent): Promise<'queued' | 'ignored' | 'duplicate'> {
    if (ev.status !== 'PENDING') {
      // Lark pushes REJECTED (an approver said no) or DONE (withdrawn, deleted) for other tasks:
      // a run waiting on approvers is then closed instead of staying in the live set forever.
      if (ev.status === 'REJECTED' || ev.status === 'DONE') {
        const run = await this.o.runs.get(ev.instanceCode);
        if (run?.status === 'active') this.schedule(run.id, () => this.story.closeIfEnded(run.id));
      }
      return 'ignored';
    }
    if (this.o.assistantUserId && ev.userId !== this.o.assistantUserId && ev.openId !== this.o.assistantUserId) return 'ignored';
    const flow = this.o.flows.approvalFlowFor(ev.approvalCode);
    if (!flow) {
      this.o.logger.warn({ approvalCode: ev.approvalCode }, 'approval event for a definition no flow declares; ignored');
      return 'ignored';
    }
    const existing = await this.o.runs.get(ev.instanceCode);
    if (existing && (existing.inbox.includes(ev.taskId) || STAGES.some((s) => existing.stages[s]?.taskId === ev.taskId))) {
      return 'duplicate';
    }
    const now = new Date(this.o.clock.now()).toISOString();
    const run: Run = existing ?? {
      id: ev.instanceCode,
      flowId: flow.id,
      approvalCode: ev.approvalCode,
      instanceCode: ev.instanceCode,
      applicant: {},
      inbox: [],
      stages: {},
      steps: [{ at: now, step: 'submitted' }],
      status: 'active',
      createdAt: now,
      updatedAt: now,
    };
    run.inbox.push(ev.taskId);
    // A run set aside because its earlier task was at a node this flow does not handle wakes up.
    if (run.status === 'ignored') run.status = 'active';
    run.updatedAt = now;
    await this.o.runs.put(run);
    this.schedule(run.id);
    return 'queued';
  }

  /** An async business result arrived at /api/v1/lark/<stage>/callback (signature already checked). */
  async acceptCallback(stage: Stage, run: Run, result: BusinessResult): Promise<void> {
    const s = run.stages[stage];
    if (!s) throw new Conflict(`ticket ${run.id} has no ${stage} stage`);
    if (s.state !== 'waiting_callback') throw new Conflict(`ticket ${run.id} is not waiting for a ${stage} callback (state: ${s.state})`);
    s.decision = verdict(result);
    s.state = 'decided';
    this.timers.clear(run.id, stage);
    await this.story.save(run);
    this.schedule(run.id);
  }

  async findRun(ticketId: string): Promise<Run | undefined> {
    return this.o.runs.get(ticketId);
  }

  /** Retry button: re-runs a failed stage when the user may. Answers the toast text. */
  async retry(runId: string, stage: Stage, operatorOpenId: string | undefined): Promise<{ ok: boolean; message: string }> {
    const run = await this.o.runs.get(runId);
    if (!run) return { ok: false, message: 'This request is no longer known to lark-bridge.' };
    const flow = this.story.flowOf(run);
    if (!flow) return { ok: false, message: `Flow ${run.flowId} is not loaded.` };
    if (!operatorOpenId || !flow.notify?.retryBy.includes(operatorOpenId)) return { ok: false, message: 'You are not allowed to retry this request.' };
    if (failedStageOf(run) !== stage) return { ok: false, message: `The ${stage} stage has not failed; nothing to retry.` };
    const s = run.stages[stage]!;
    s.state = 'pending';
    s.retries++;
    delete s.decision;
    run.status = 'active';
    delete run.error;
    await this.story.save(run);
    this.schedule(run.id);
    return { ok: true, message: `Retrying ${stage}…` };
  }

  /** Picks up runs a crash or stop left in the middle. */
  async resume(): Promise<number> {
    let n = 0;
    for (const run of await this.o.runs.live()) {
      if (run.status === 'active') {
        this.schedule(run.id);
        n++;
      }
    }
    return n;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timers.clearAll();
    await Promise.all([...this.chains.values()]);
  }

  /** Waits until no run has work queued (tests and benchmarks). */
  async idle(): Promise<void> {
    while (this.chains.size) await Promise.all([...this.chains.values()]);
  }

  private schedule(runId: string, work: () => Promise<void> = () => this.story.advance(runId)): void {
    if (this.stopped) return;
    const previous = this.chains.get(runId) ?? Promise.resolve();
    const next = previous
      .then(work)
      .catch((err: unknown) => this.o.logger.error({ err, runId }, 'approval run step failed; it resumes on the next event or restart'))
      .finally(() => {
        if (this.chains.get(runId) === next) this.chains.delete(runId);
      });
    this.chains.set(runId, next);
  }

}
