import type { Clock } from '../clock.js';
import type { ApprovalInstance } from '../lark/approval.js';
import type { Logger } from '../log.js';
import type { Run } from './run.js';
import { RunLockLost, TurnInterrupted } from './run-turns.js';

/** Waits before reading an instance again that does not list an event's task yet: about 7 s in all. */
const TASK_VISIBLE_WAITS_MS = [1_000, 2_000, 4_000];

/**
 * Reads an approval instance again, a few times, while it does not list a task an event told us
 * of yet: Lark may send the event a moment before the task is visible to instance get, and a task
 * not found is skipped for good. A stop, or the run's lock lost, ends the wait and the turn.
 */
export class InstanceReads {
  private readonly stopping = new AbortController();

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** `lookUp` reads the instance (undefined: Lark refused, recorded on the run); `fence` is the run's lock. */
  async showing(
    run: Run,
    tasks: ReadonlyArray<{ taskId: string }>,
    lookUp: () => Promise<ApprovalInstance | undefined>,
    fence?: AbortSignal,
  ): Promise<ApprovalInstance | undefined> {
    let instance = await lookUp();
    for (const wait of TASK_VISIBLE_WAITS_MS) {
      if (!instance || tasks.every((item) => instance!.tasks.some((t) => t.id === item.taskId))) break;
      this.logger.info({ runId: run.id, flow: run.flowId, wait }, 'approval: a task of the event is not in the instance yet; reading it again');
      await this.waitUnlessStopped(run.id, wait, fence);
      instance = await lookUp();
    }
    return instance;
  }

  /** The service is stopping: waits between instance reads end at once, and their turns with them. */
  stop(): void {
    this.stopping.abort();
  }

  /**
   * Sleeps `ms` unless the service stops or the run's lock is lost meanwhile. Either ends the turn
   * before it saves anything (TurnInterrupted, RunLockLost): its inbox items stay for the next turn,
   * here after a restart or on another replica. One listener pair per wait, removed after it: a
   * signal derived from the long-lived stop signal (AbortSignal.any) would stay in memory for good.
   */
  private async waitUnlessStopped(runId: string, ms: number, fence: AbortSignal | undefined): Promise<void> {
    const stopping = this.stopping.signal;
    const either = new AbortController();
    const abort = () => either.abort();
    stopping.addEventListener('abort', abort, { once: true });
    fence?.addEventListener('abort', abort, { once: true });
    try {
      if (!stopping.aborted && !fence?.aborted) await this.clock.sleep(ms, either.signal);
    } finally {
      stopping.removeEventListener('abort', abort);
      fence?.removeEventListener('abort', abort);
    }
    if (stopping.aborted) throw new TurnInterrupted(runId);
    if (fence?.aborted) throw new RunLockLost(runId);
  }
}
