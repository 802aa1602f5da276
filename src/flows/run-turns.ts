import type { RecordCollection, Store } from '../store/store.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';
import type { RunStory } from './approval-run.js';
import type { RunInbox } from './run-inbox.js';
import type { Run } from './run.js';
import { RunWakeups, type RunWakeup } from './run-wakeups.js';
import type { YieldingSlots } from '../accept-first.js';
import { detached } from '../detached.js';

export interface TurnResult {
  /** Ids of the inbox items the turn read (applied or left waiting). */
  seen: string[];
  /** The run as the turn left it, while still active. */
  run?: Run;
}

/** The run's lock was lost mid-turn (the database connection holding it dropped). */
export class RunLockLost extends Error {
  constructor(runId: string) {
    super(`the lock of run ${runId} was lost: another replica may advance it now; this turn stops`);
    this.name = 'RunLockLost';
  }
}

/** The service is stopping: the turn ends before saving anything; its inbox items wait for the next start. */
export class TurnInterrupted extends Error {
  constructor(runId: string) {
    super(`the turn of run ${runId} stopped with the service; its news is taken up at the next start`);
    this.name = 'TurnInterrupted';
  }
}

export interface RunTurnsDeps {
  runs: RecordCollection<Run>;
  inbox: RunInbox;
  locks: Pick<Store, 'tryLock'>;
  wakeups: RecordCollection<RunWakeup>;
  clock: Clock;
  logger: Logger;
  sweepEveryMs?: number;
  /** Turns yield to the accept path: at most a few at once while requests keep the event loop busy. */
  turnSlots?: YieldingSlots;
}

export interface TurnRequest {
  /** Asked by a way in that just recorded news (an inbox item, a callback): retried while the run's lock is busy elsewhere. */
  news?: boolean;
  /** Turn marks a sweep claimed for this run: removed once a turn ran. */
  claimed?: string[];
}

/** What a queued turn was asked: the requests that joined it, and how often its run was found locked. */
type Asked = Required<TurnRequest> & { busyRetries: number };

/** More turns in a row while news keeps coming in during a turn; then the next request. */
const TURNS_PER_LOCK = 5;
/** A news-bringing request whose run is locked elsewhere tries again: 50 ms doubling to 1 s, for up to about 10 minutes. */
const BUSY_RETRY_FIRST_MS = 50;
const BUSY_RETRY_MAX_MS = 1_000;
const BUSY_RETRIES = 600;
const SWEEP_BATCH = 100;

/**
 * Turns of approval runs, one at a time per run across replicas. Design (DESIGN.md §5: only
 * PostgreSQL coordinates replicas):
 * - a turn holds the store lock `run:<instance code>` (an advisory lock on PostgreSQL) from its
 *   first read to its last write; in this process, one turn of a run runs at a time;
 * - news recorded while another replica holds the lock is never stranded: the holder looks at
 *   the inbox and the callbacks again before it lets go (and takes another turn for anything it
 *   did not see), and the replica that recorded the news retries the lock until it gets it or
 *   the news is gone. Whichever order the news' commit and the holder's last look come in, one
 *   of the two sees it;
 * - what no way in will bring back (a turn cut by a crash, a callback deadline armed on a replica
 *   that died, news whose replica died before its turn) is found by a periodic sweep on every
 *   replica: claimStale (FOR UPDATE SKIP LOCKED) of wake-up marks (run-wakeups.ts) and of inbox
 *   items, whose leases ran out.
 */
export class RunTurns {
  /**
   * Runs asked for a turn that has not started, and what was asked: later requests join. While
   * it waits for a slot a run is this entry and a callback, not a suspended turn, so a backlog
   * of thousands of runs behind a burst costs little memory (and little garbage collection).
   */
  private readonly queued = new Map<string, Asked>();
  /** Runs whose turn is running here: one at a time per run; a run asked meanwhile goes next. */
  private readonly running = new Set<string>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private readonly wakeups: RunWakeups;
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping = false;
  private stopped = false;

  constructor(
    private readonly o: RunTurnsDeps,
    private readonly story: RunStory,
  ) {
    this.wakeups = new RunWakeups(o.wakeups, o.clock);
  }

  schedule(runId: string, request: TurnRequest = {}, busyRetries = 0): void {
    if (this.stopped) return;
    const pending = this.queued.get(runId);
    if (pending) {
      pending.news ||= Boolean(request.news);
      // A sweep may claim the same expired mark again while the run waits: it is ended once.
      for (const id of request.claimed ?? []) if (!pending.claimed.includes(id)) pending.claimed.push(id);
      return;
    }
    this.queued.set(runId, { news: Boolean(request.news), claimed: [...(request.claimed ?? [])], busyRetries });
    if (!this.running.has(runId)) this.askSlot(runId);
  }

  /** Sweeps once now (what a crash of this process left), then every sweepEveryMs. */
  async start(): Promise<void> {
    if (this.sweeper || this.stopped) return;
    await this.sweep().catch((err: unknown) => this.o.logger.warn({ err }, 'approval runs: sweep failed; trying again shortly'));
    this.sweeper = setInterval(() => {
      this.sweep().catch((err: unknown) => this.o.logger.warn({ err }, 'approval runs: sweep failed; trying again shortly'));
    }, this.o.sweepEveryMs ?? 5_000);
    this.sweeper.unref();
  }

  /** No turn starts from now on (those queued behind the slots included); the running ones end on their own. */
  beginStop(): void {
    this.stopped = true;
    clearInterval(this.sweeper);
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
  }

  async stop(): Promise<void> {
    this.beginStop();
    await this.idle();
  }

  /** Resolves once no turn is queued or running. */
  idle(): Promise<void> {
    if (this.queued.size === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The run's next turn waits for a slot (a few at once during a burst, RUN_MAX_TURNS otherwise). */
  private askSlot(runId: string): void {
    // Not in the context of the request that brought the news: the turn outlives it (src/detached.ts).
    const start = () => detached(() => this.startTurn(runId));
    if (this.o.turnSlots) this.o.turnSlots.whenFree(start);
    else start();
  }

  /**
   * Called with the slot taken. The turn starts on a microtask, never inside the caller's stack,
   * and takes what was asked only then: requests made in the same tick (a sweep finding two
   * stale marks of one run) join this turn instead of asking for another.
   */
  private startTurn(runId: string): void {
    this.running.add(runId);
    void Promise.resolve()
      .then(() => {
        const asked = this.queued.get(runId)!;
        this.queued.delete(runId);
        // Queued behind the ceiling when the service began to stop: its news waits on disk for the next start.
        return this.stopped ? undefined : this.turn(runId, asked, asked.busyRetries);
      })
      .catch((err: unknown) => {
        if (err instanceof TurnInterrupted) this.o.logger.info({ runId }, err.message);
        else this.o.logger.error({ err, runId }, 'approval run step failed; it is taken up again by the next event or the sweep');
      })
      .finally(() => {
        this.o.turnSlots?.release();
        this.running.delete(runId);
        if (this.queued.has(runId)) this.askSlot(runId);
        else if (this.queued.size === 0 && this.running.size === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
  }

  private async turn(runId: string, asked: Required<TurnRequest>, busyRetries: number): Promise<void> {
    const lock = await this.o.locks.tryLock(`run:${runId}`);
    if (!lock) {
      if (asked.news) this.retryWhenFree(runId, busyRetries);
      return; // claimed marks stay: their lease runs out again and the next sweep retries
    }
    try {
      const mark = await this.wakeups.turnStarted(runId);
      let result: TurnResult = { seen: [] };
      for (let i = 0; i < TURNS_PER_LOCK; i++) {
        result = await this.story.advance(runId, lock.signal);
        // The last look before letting go: news recorded meanwhile on another replica is taken now.
        if (!(await this.hasNews(runId, result))) break;
      }
      if (lock.signal.aborted) return; // another replica may be in the run now: it parks it
      await this.wakeups.park(runId, result.run);
      await this.wakeups.turnsEnded([mark, ...asked.claimed]);
    } finally {
      await lock.release();
    }
  }

  /** Inbox items the turn did not read, or a callback result for a stage still waiting for it. */
  private async hasNews(runId: string, result: TurnResult): Promise<boolean> {
    const seen = new Set(result.seen);
    if ((await this.o.inbox.forRun(runId)).some((i) => !seen.has(i.id))) return true;
    return this.callbackWaiting(result.run);
  }

  private async callbackWaiting(run: Run | undefined): Promise<boolean> {
    if (!run) return false;
    for (const [stage, s] of Object.entries(run.stages) as Array<[keyof Run['stages'], NonNullable<Run['stages']['check']>]>) {
      if (s.state === 'waiting_callback' && (await this.o.inbox.callbackFor(run.id, stage, s))) return true;
    }
    return false;
  }

  /** The run's lock is held elsewhere: try again shortly, while the run still has news to take. */
  private retryWhenFree(runId: string, attempt: number): void {
    if (this.stopped || attempt >= BUSY_RETRIES || this.retries.has(runId)) return;
    const delay = Math.min(BUSY_RETRY_MAX_MS, BUSY_RETRY_FIRST_MS * 2 ** attempt);
    const timer = setTimeout(() => {
      this.retries.delete(runId);
      void this.stillHasNews(runId).then(
        (news) => news && this.schedule(runId, { news: true }, attempt + 1),
        () => this.schedule(runId, { news: true }, attempt + 1),
      );
    }, delay);
    timer.unref();
    this.retries.set(runId, timer);
  }

  private async stillHasNews(runId: string): Promise<boolean> {
    if (await this.o.inbox.hasItemsFor(runId)) return true;
    const run = await this.o.runs.get(runId);
    return run?.status === 'active' && (await this.callbackWaiting(run));
  }

  /** Takes up what no way in brings back: turn and deadline marks, and inbox items, whose lease ran out. */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      const marks = await this.wakeups.claimStale(SWEEP_BATCH);
      for (const m of marks) this.schedule(m.runId, { claimed: m.kind === 'turn' ? [m.id] : [] });
      for (const runId of await this.o.inbox.claimStale(SWEEP_BATCH)) this.schedule(runId);
    } finally {
      this.sweeping = false;
    }
  }
}
