import { Conflict, InvalidInput, NotFound } from '../errors.js';
import type { ApprovalTaskEvent } from '../lark/event-intake.js';
import type { RecordCollection, Store } from '../store/store.js';
import { businessIdempotencyKey, type BusinessResult } from './business-call.js';
import { CallbackTimers } from './callback-timers.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';
import { retryStageOf } from './progress-card.js';
import { RunStory, type RunDeps } from './approval-run.js';
import { failureKey, type Run } from './run.js';
import { RunTurns } from './run-turns.js';
import type { RunWakeup } from './run-wakeups.js';
import type { YieldingSlots } from '../accept-first.js';

export interface EngineDeps extends RunDeps {
  /** The store's named locks: a run's turns are serialised across replicas by `run:<instance code>`. */
  locks: Pick<Store, 'tryLock'>;
  /** Wake-up marks (run-wakeups.ts): a turn cut by a crash, a callback deadline, found by any replica. */
  wakeups: RecordCollection<RunWakeup>;
  /** How often stale wake-ups and inbox items are looked for (default 5 s). */
  sweepEveryMs?: number;
  /** Turns yield to the accept path under a burst (src/accept-first.ts); absent: no limit. */
  turnSlots?: YieldingSlots;
}

// Statuses of other tasks that change a run we know (approval_task event, see run-updates.ts).
const TRACKED_STATUSES = new Set(['REJECTED', 'DONE', 'ROLLBACK', 'OVERTIME_CLOSE', 'OVERTIME_RECOVER']);

/**
 * The way in for approval work: task events, async callbacks, the Retry button, restarts.
 *
 * One turn at a time per run, across replicas (run-turns.ts): every change to a run record
 * happens in `RunStory.advance`, in a turn that holds the run's lock. The ways in only validate,
 * write a small durable inbox item (or a callback claim) and ask for a turn, so Lark's 200 and a
 * callback's answer wait for one write, never for a slow business or Lark call a turn may be in.
 */
export class ApprovalEngine {
  private readonly timers = new CallbackTimers();
  private readonly story: RunStory;
  private readonly turns: RunTurns;

  constructor(private readonly o: EngineDeps) {
    this.story = new RunStory(o, this.timers, (runId) => this.turns.schedule(runId));
    this.turns = new RunTurns(o, this.story);
  }

  /** Records a task event durably (Lark may then get its 200) and queues the run. */
  async acceptTaskEvent(ev: ApprovalTaskEvent): Promise<'queued' | 'ignored' | 'duplicate'> {
    const assistant = this.o.assistantUserId;
    if (!assistant) {
      // Without it any user's PENDING task at a matching node would be acted on.
      this.o.logger.error('LARK_ASSISTANT_USER_ID is not set: approval events are ignored');
      return 'ignored';
    }
    if (!ev.instanceCode || !ev.taskId) return 'ignored';
    const runId = ev.instanceCode;
    let added: 'added' | 'duplicate';
    if (ev.status === 'PENDING') {
      if (ev.userId !== assistant && ev.openId !== assistant) return 'ignored';
      const flow = this.o.flows.approvalFlowFor(ev.approvalCode);
      if (!flow) {
        this.o.logger.warn({ approvalCode: ev.approvalCode }, 'approval event for a definition no flow declares; ignored');
        return 'ignored';
      }
      added = await this.o.inbox.add({ runId, kind: 'task', taskId: ev.taskId, flowId: flow.id, approvalCode: ev.approvalCode });
    } else if (TRACKED_STATUSES.has(ev.status)) {
      // Other people's tasks matter only for runs we know (or are about to start).
      if (!(await this.o.runs.get(runId)) && !(await this.o.inbox.hasItemsFor(runId))) return 'ignored';
      added = await this.o.inbox.add({ runId, kind: 'status', taskId: ev.taskId, status: ev.status });
    } else {
      return 'ignored';
    }
    this.turns.schedule(runId, { news: true });
    return added === 'added' ? 'queued' : 'duplicate';
  }

  /**
   * An async business result at /api/v1/lark/<stage>/callback, signed by `signer`. Accepted while
   * the stage's call is in flight too (an API may call back before it answers our call). The
   * answer waits only for the result to be on disk; the run applies it on its chain.
   */
  async acceptCallback(stage: Stage, ticketId: string, signer: ApprovalFlow, result: BusinessResult, attemptId?: string): Promise<void> {
    const run = await this.o.runs.get(ticketId);
    // A ticket of another flow is unknown to this signer: the same answer as no ticket at all.
    if (!run || run.flowId !== signer.id) throw new NotFound(`unknown ticket ${ticketId}`);
    const s = run.stages[stage];
    if (!s) throw new InvalidInput(`ticket ${ticketId} has no ${stage} stage`);
    if (signer[stage]?.mode !== 'async') throw new Conflict(`the ${stage} stage of ticket ${ticketId} is synchronous: its result is the answer to our call`);
    if (run.status !== 'active' || (s.state !== 'calling' && s.state !== 'waiting_callback')) {
      throw new Conflict(`ticket ${ticketId} is not waiting for a ${stage} callback (state: ${run.status === 'active' ? s.state : run.status})`);
    }
    // Callbacks that echo our attempt_id are tied to it: a late or replayed result of an attempt
    // that a Retry replaced must not decide the new one. (Without it, the stage's first result wins.)
    const current = businessIdempotencyKey(run.instanceCode, stage, s.taskId, s.retries);
    if (attemptId !== undefined && attemptId !== current) {
      throw new Conflict(`callback is for another attempt of the ${stage} stage of ticket ${ticketId} (attempt_id ${attemptId}); the current attempt is ${current}`);
    }
    if (!(await this.o.inbox.claimCallback(run.id, stage, s, result))) throw new Conflict(`ticket ${ticketId} already has a ${stage} result`);
    this.turns.schedule(run.id, { news: true });
  }

  async findRun(ticketId: string): Promise<Run | undefined> {
    return this.o.runs.get(ticketId);
  }

  /** Retry button: queues a re-run of the failed step when the presser may. Answers the toast text. */
  async retry(runId: string, stage: Stage, operatorOpenId: string | undefined): Promise<{ ok: boolean; message: string }> {
    const run = await this.o.runs.get(runId);
    if (!run) return { ok: false, message: 'This request is no longer known to lark-bridge.' };
    const flow = this.story.flowOf(run);
    if (!flow) return { ok: false, message: `Flow ${run.flowId} is not loaded.` };
    if (!operatorOpenId || !flow.notify?.retryBy.includes(operatorOpenId)) return { ok: false, message: 'You are not allowed to retry this request.' };
    if (retryStageOf(run, flow) !== stage) return { ok: false, message: `The ${stage} stage has not failed; nothing to retry.` };
    await this.o.inbox.add({ runId: run.id, kind: 'retry', stage, seen: failureKey(run, stage), operator: operatorOpenId });
    this.turns.schedule(run.id, { news: true });
    return { ok: true, message: run.larkFailure ? `Retrying: ${run.larkFailure.step}…` : `Retrying ${stage}…` };
  }

  /**
   * Picks up runs a crash or stop left in the middle, and runs with news not yet taken; then
   * keeps sweeping for what a dead replica left (run-turns.ts). Answers how many runs it queued.
   */
  async resume(): Promise<number> {
    const ids = new Set(await this.o.inbox.runIds());
    // Runs saved before wake-up marks existed, or mid-step: a turn of a run with nothing to do changes nothing.
    for (const run of await this.o.runs.live()) if (run.status === 'active' && needsTurn(run)) ids.add(run.id);
    for (const id of ids) this.turns.schedule(id);
    await this.turns.start();
    return ids.size;
  }

  /**
   * The first thing a stop does: no queued turn starts any more, and a turn waiting to read an
   * instance again ends now, not in up to 7 s.
   */
  beginStop(): void {
    this.turns.beginStop();
    this.story.stop();
  }

  async stop(): Promise<void> {
    this.timers.clearAll();
    this.beginStop();
    await this.turns.stop();
  }

  /** Waits until no run has work queued (tests and benchmarks). */
  idle(): Promise<void> {
    return this.turns.idle();
  }
}

/** A run with a step to take or a deadline to watch, or whose card was never sent. */
function needsTurn(run: Run): boolean {
  if (!run.cardMessageId) return true;
  return Object.values(run.stages).some((s) => s.state !== 'acted');
}
