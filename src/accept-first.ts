import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Fifo } from './fifo.js';

export interface AcceptFirstOptions {
  /** How often pressure is judged: 100 ms. */
  windowMs?: number;
  /**
   * Requests within one window for it to count as a burst: 20 (200 requests/s). A client polling
   * a job's status every few milliseconds is not a burst, and must not throttle the worker.
   */
  minRequests?: number;
  /** Event-loop utilisation at or above which the loop counts as busy: 0.5. */
  busyAbove?: number;
  /** The loop's utilisation since the previous call, in [0, 1]; injected by tests. */
  utilisation?: () => number;
}

/** What the work that yields asks the gate: the task-sync worker, the approval run turns (YieldingSlots). */
export interface AcceptGate {
  readonly underPressure: boolean;
  onRelief(listener: () => void): void;
}

/**
 * Tells the work behind the accept path when that path is under pressure, so that it yields:
 * at least `minRequests` requests arrived within the last window AND the event loop was busy for
 * at least `busyAbove` of it. Accepting work (parse, check, append to the journal, answer) and
 * doing it (upstream calls, run steps, archiving) share one event loop; under a burst the
 * task-sync worker runs at most TASK_SYNC_BURST_CONCURRENCY calls and approval runs take a few
 * steps at once, and both fill up again once the pressure is gone. Nothing is dropped or
 * reordered: work only starts later.
 *
 * The cost on the request path is one increment per request (requestSeen); the judging runs on
 * an unref'd timer.
 */
export class AcceptFirst implements AcceptGate {
  private pressure = false;
  private requests = 0;
  private readonly listeners: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly windowMs: number;
  private readonly minRequests: number;
  private readonly busyAbove: number;
  private readonly utilisation: () => number;

  constructor(o: AcceptFirstOptions = {}) {
    this.windowMs = o.windowMs ?? 100;
    this.minRequests = o.minRequests ?? 20;
    this.busyAbove = o.busyAbove ?? 0.5;
    this.utilisation = o.utilisation ?? loopUtilisation();
  }

  get underPressure(): boolean {
    return this.pressure;
  }

  /** Called for every HTTP request the server receives. */
  requestSeen(): void {
    this.requests++;
  }

  onRelief(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Judges the window since the last call; on the way out of pressure, tells the listeners. */
  sample(): void {
    const busy = this.utilisation() >= this.busyAbove;
    const burst = this.requests >= this.minRequests;
    this.requests = 0;
    const was = this.pressure;
    this.pressure = busy && burst;
    if (was && !this.pressure) for (const listener of this.listeners) listener();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), this.windowMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.pressure) {
      this.pressure = false;
      for (const listener of this.listeners) listener();
    }
  }
}

/** The event loop's utilisation between successive calls. */
function loopUtilisation(): () => number {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const current = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(current, last);
    last = current;
    return delta.utilization;
  };
}

/**
 * Slots for work that yields to the accept path: up to `max` run while there is no pressure; under
 * pressure a new one starts only while fewer than `burst` run. Waiters start in arrival order,
 * as slots free or when the pressure ends.
 */
export class YieldingSlots {
  private active = 0;
  private readonly waiting = new Fifo<() => void>();

  constructor(
    private readonly gate: AcceptGate,
    private readonly burst: number,
    private readonly max = Infinity,
  ) {
    gate.onRelief(() => this.admit());
  }

  /** Work that holds a slot now. */
  get running(): number {
    return this.active;
  }

  /**
   * Calls `start` with a slot taken (release() gives it back): now, if one is free, or once one
   * frees. A waiter is its callback only, so a long backlog costs little memory. `start` must
   * not throw (it may run inside release() or the gate's timer) and should only begin the work.
   */
  whenFree(start: () => void): void {
    if (this.waiting.length === 0 && this.free()) {
      this.active++;
      start();
      return;
    }
    this.waiting.push(start);
  }

  release(): void {
    this.active--;
    this.admit();
  }

  private free(): boolean {
    return this.active < (this.gate.underPressure ? this.burst : this.max);
  }

  private admit(): void {
    while (this.waiting.length && this.free()) {
      this.active++;
      this.waiting.shift()!();
    }
  }
}
