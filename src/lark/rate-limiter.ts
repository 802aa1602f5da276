import { systemClock, type Clock } from '../clock.js';
import { Fifo } from '../fifo.js';

/** At most `limit` calls in any `ms`-long stretch of time (a sliding window). */
export interface RateWindow {
  limit: number;
  ms: number;
}

/** The windows one Open API is held to: for the whole app, and per key (chat or message) when Lark limits that too. */
export interface ApiLimits {
  app: readonly RateWindow[];
  perKey?: RateWindow;
}

export interface RateLimiterOptions {
  clock?: Clock;
  /** Length of Lark's second and minute; a test scales them down to see both limits bind quickly. */
  secondMs?: number;
  minuteMs?: number;
}

/**
 * Lark's limits for the calls we make, per app and per API. Message create, card update and
 * instance get: 50/s and 1,000/min each ("special" frequency tier); message create: 5/s per chat;
 * card update: 5/s per message. Other calls: 50/s.
 * https://open.feishu.cn/document/server-docs/api-call-guide/frequency-control
 * https://open.feishu.cn/document/server-docs/im-v1/message/create
 * https://open.feishu.cn/document/server-docs/im-v1/message-card/patch
 */
export function larkLimits(secondMs: number, minuteMs: number): { byApi: ReadonlyMap<string, ApiLimits>; other: ApiLimits } {
  const app = [
    { limit: 50, ms: secondMs },
    { limit: 1000, ms: minuteMs },
  ];
  const perKey = { limit: 5, ms: secondMs };
  return {
    byApi: new Map<string, ApiLimits>([
      ['im.message.create', { app, perKey }],
      ['im.message.patch', { app, perKey }],
      // Reply: the same 50/s, 1,000/min and 5/s per chat. https://open.feishu.cn/document/server-docs/im-v1/message/reply
      ['im.message.reply', { app, perKey }],
      ['approval.instance.get', { app }],
    ]),
    other: { app: [{ limit: 50, ms: secondMs }] },
  };
}

/** A call waiting in its lane (the lane names its key). */
interface Pending {
  api: string;
  start(): void;
}

/** Index of the first time in an ascending log that is after `t`. */
function firstAfter(log: readonly number[], t: number): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (log[mid]! > t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** How long until one more call fits every window (0: now). */
function waitFor(log: readonly number[], windows: readonly RateWindow[], now: number): number {
  let wait = 0;
  for (const w of windows) {
    const inside = log.length - firstAfter(log, now - w.ms);
    if (inside >= w.limit) wait = Math.max(wait, log[log.length - w.limit]! + w.ms - now);
  }
  return wait;
}

/**
 * Admits each Open API call when every window of its API (and of its chat or message) has room,
 * in arrival order within a key; a call held back by its key does not hold back other keys.
 */
export class LarkRateLimiter {
  private readonly clock: Clock;
  private readonly limits: ReturnType<typeof larkLimits>;
  private readonly longestMs: number;
  private readonly appLogs = new Map<string, number[]>();
  private readonly keyLogs = new Map<string, number[]>();
  /** Calls waiting, in lanes of one API and key (arrival order within a lane; lanes in order of their first call). */
  private readonly lanes = new Map<string, Fifo<Pending>>();
  private pumping = false;
  private wake?: AbortController;

  constructor(o: RateLimiterOptions = {}) {
    this.clock = o.clock ?? systemClock;
    this.limits = larkLimits(o.secondMs ?? 1000, o.minuteMs ?? 60_000);
    this.longestMs = Math.max(o.secondMs ?? 1000, o.minuteMs ?? 60_000);
  }

  /** Runs `fn` once `api` (e.g. im.message.create) may be called again for `key` (chat or message id). */
  schedule<T>(api: string, key: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      // Started in the pass that admits it, so the call leaves when the limiter counted it.
      const start = () => {
        try {
          fn().then(resolve, reject);
        } catch (err) {
          reject(err);
        }
      };
      const lane = `${api}\u0000${key}`;
      const waiting = this.lanes.get(lane);
      // Behind others of its lane it cannot go sooner than they do: no need for a new pass.
      if (waiting) return void waiting.push({ api, start });
      this.lanes.set(lane, new Fifo([{ api, start }]));
      if (this.pumping) this.wake?.abort();
      else this.pump();
    });
  }

  /** Keys (chat or message ids) with calls still inside their window. */
  get trackedKeys(): number {
    this.forgetIdleKeys(this.clock.now());
    return this.keyLogs.size;
  }

  private pump(): void {
    this.pumping = true;
    void (async () => {
      try {
        while (this.lanes.size > 0) {
          const wait = this.admit();
          if (this.lanes.size === 0) break;
          this.wake = new AbortController();
          await this.clock.sleep(wait, this.wake.signal);
        }
      } finally {
        this.pumping = false;
        this.wake = undefined;
      }
    })();
  }

  /**
   * Starts every queued call that fits (keeping the others in order); returns how long until the
   * next may fit. Each call is stamped with the time it starts, so the log is what Lark sees.
   */
  private admit(): number {
    let wait = Infinity;
    const heldApis = new Set<string>();
    for (const [lane, waiting] of this.lanes) {
      while (waiting.length > 0) {
        const p = waiting.peek()!;
        const now = this.clock.now();
        const limits = this.limits.byApi.get(p.api) ?? this.limits.other;
        const appLog = this.logOf(this.appLogs, p.api, now);
        const appWait = heldApis.has(p.api) ? Infinity : waitFor(appLog, limits.app, now);
        const keyLog = limits.perKey && appWait === 0 ? this.logOf(this.keyLogs, lane, now) : undefined;
        const keyWait = keyLog ? waitFor(keyLog, [limits.perKey!], now) : 0;
        if (appWait > 0 || keyWait > 0) {
          // The rest of this lane waits behind it; another lane may still go.
          if (appWait > 0) heldApis.add(p.api);
          wait = Math.min(wait, appWait > 0 ? appWait : keyWait);
          break;
        }
        appLog.push(now);
        keyLog?.push(now);
        waiting.shift();
        p.start();
      }
      if (waiting.length === 0) this.lanes.delete(lane);
    }
    this.forgetIdleKeys(this.clock.now());
    return wait;
  }

  private logOf(logs: Map<string, number[]>, id: string, now: number): number[] {
    let log = logs.get(id);
    if (!log) logs.set(id, (log = []));
    while (log.length > 0 && log[0]! <= now - this.longestMs) log.shift();
    return log;
  }

  /** A key whose last call left its window is forgotten, so the map does not grow with every chat ever seen. */
  private forgetIdleKeys(now: number): void {
    for (const [id, log] of this.keyLogs) {
      const api = id.slice(0, id.indexOf('\u0000'));
      const windowMs = (this.limits.byApi.get(api) ?? this.limits.other).perKey?.ms ?? 0;
      if (log.length === 0 || log[log.length - 1]! <= now - windowMs) this.keyLogs.delete(id);
    }
  }
}
