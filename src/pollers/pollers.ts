import { createTask, type ScheduledTask } from 'node-cron';
import { backoffDelay } from '../backoff.js';
import type { Clock } from '../clock.js';
import { Conflict, NotFound, Unavailable } from '../errors.js';
import type { FlowRegistry } from '../flows/flow-registry.js';
import type { PollerFlow } from '../flows/poller-flow-schema.js';
import type { Messenger } from '../lark/messages.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { createNotifier } from '../notify/create-notifier.js';
import type { Notifier } from '../notify/notifier.js';
import type { Store } from '../store/store.js';
import type { UpstreamClient } from '../upstream/client.js';
import { CARD_BY_MESSAGE, FeedError, POSTED_CARDS, type FeedSource, type PostedCard } from './feed.js';
import { checkNewReplies, FOLLOWED_CARDS, followsReplies, type FollowedCard, type RepliesOutcome } from './follow-replies.js';
import { pollOnce, type PollRunDeps, type RunOutcome } from './poll-run.js';
import type { PostNewReplies } from './replies/replies-from-store.js';
import { freshState, POLLER_SEEN, POLLER_STATE, reportOf, summaryOf, type PollerState, type RunReport, type RunTrigger } from './poller-state.js';
import { createFeedSource } from './sources/feed-source.js';
import { pollerListing } from './poller-listing.js';

const DAY = 86_400_000;
/** A card can be found from its Lark message (a reply in its thread) this long after it was posted. */
export const CARD_RETENTION_MS = 30 * DAY;

export interface PollersOptions {
  flows: FlowRegistry;
  store: Store;
  upstream: UpstreamClient;
  /** Absent when the Lark app is not configured: pollers that post with the app bot are not scheduled. */
  messenger?: Messenger;
  clock: Clock;
  logger: Logger;
  templatesDir: string;
  /** The new-reply reminder (Lark configured): the run posts a replies feed's new comments with it. */
  postNewReplies?: PostNewReplies;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Jitter of the backoff (tests pin it). */
  random?: () => number;
  metrics?: Metrics;
}

interface Entry {
  flow: PollerFlow;
  fingerprint: string;
  source: FeedSource;
  notifier?: Notifier;
  /** Why the poller is not scheduled. */
  problem?: string;
  task?: ScheduledTask;
  /** Followed card id → when its comments were last listed (the rotation of follow-replies.ts). */
  lastChecked: Map<string, number>;
}

interface Running {
  trigger: RunTrigger;
  startedAt: number;
  promise: Promise<Attempt>;
  abort: AbortController;
}

/** A run, or why none ran: another replica holds the poller's lock, or the poller backs off after errors. */
type Attempt = RunReport | 'elsewhere' | 'backing-off';

/**
 * The poller flows in force, each on its node-cron schedule. A changed, added or removed poller
 * file is rescheduled at once (FlowRegistry.onChange). A poller runs one run at a time: a tick
 * that comes while it runs (or while it backs off after errors) is skipped and counted, never
 * queued. State (cursor, last run, last error, counts) lives in the store and survives restarts.
 *
 * Several replicas: every replica schedules every poller, and a run holds the store lock
 * `poller:<id>` (a PostgreSQL advisory lock), so each tick runs on one replica; the others find
 * the lock held and let the tick go. The run reads the state from the store under the lock and
 * writes it back before letting go. A replica killed mid-run loses the lock with its connection;
 * the next tick runs elsewhere from the stored cursor, and the seen marks and Lark's message uuid
 * (poll-run.ts) keep an item posted just before the kill from being posted twice.
 */
export class Pollers {
  private readonly entries = new Map<string, Entry>();
  private readonly running = new Map<string, Running>();
  /** Ticks skipped here since this replica last saved the poller's state. */
  private readonly unsavedSkips = new Map<string, number>();
  private started = false;
  private stopping = false;
  private unsubscribe?: () => void;

  constructor(private readonly o: PollersOptions) {}

  /** Schedules the pollers in force and follows changes of the flow files. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.o.flows.onChange(() => this.sync());
    this.sync();
  }

  /** Stops every schedule, asks running polls to stop after the card in hand, waits up to graceMs. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    for (const e of this.entries.values()) await e.task?.destroy();
    const runs = [...this.running.values()];
    for (const r of runs) r.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.allSettled(runs.map((r) => r.promise)), grace]);
    clearTimeout(timer);
  }

  /** Aligns the schedules with the poller flows in force. */
  sync(): void {
    if (!this.started || this.stopping) return;
    const wanted = new Map(this.o.flows.pollers().map((f) => [f.id, f]));
    for (const [id, entry] of this.entries) {
      if (wanted.has(id)) continue;
      void entry.task?.destroy();
      this.entries.delete(id);
      this.o.logger.info({ poller: id }, 'poller removed: no longer scheduled');
    }
    for (const [id, flow] of wanted) {
      const fingerprint = JSON.stringify(flow);
      const current = this.entries.get(id);
      if (current?.fingerprint === fingerprint) continue;
      void current?.task?.destroy();
      this.entries.set(id, this.schedule(flow, fingerprint));
    }
  }

  private schedule(flow: PollerFlow, fingerprint: string): Entry {
    const { logger } = this.o;
    const source = createFeedSource(flow.source, this.o.upstream);
    const notifier = createNotifier(flow.notify, flow.template, this.o);
    if ('problem' in notifier) {
      logger.warn({ poller: flow.id }, `poller ${flow.id} not scheduled: ${notifier.problem}`);
      return { flow, fingerprint, source, problem: notifier.problem, lastChecked: new Map() };
    }
    const cronLog = (m: unknown) => logger.debug({ poller: flow.id }, `node-cron: ${String(m)}`);
    const task = createTask(flow.schedule, () => this.tick(flow.id), {
      name: `poller:${flow.id}`,
      timezone: flow.timezone,
      noOverlap: true,
      suppressMissedWarning: true,
      logger: { info: cronLog, warn: cronLog, debug: cronLog, error: (m) => logger.error({ poller: flow.id }, `node-cron: ${String(m)}`) },
    });
    task.on('execution:overlap', () => this.skipTick(flow.id));
    void task.start();
    logger.info({ poller: flow.id, schedule: flow.schedule, notify: flow.notify.type }, 'poller scheduled');
    return { flow, fingerprint, source, notifier, task, lastChecked: new Map() };
  }

  /** A scheduled tick: runs the poller unless it is running (here or on another replica) or backing off. */
  async tick(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (!this.started || this.stopping || !entry?.notifier) return;
    // run() registers itself before yielding: never two at once here (node-cron's noOverlap only
    // knows its own ticks, not a run asked for by the API); the lock keeps other replicas out.
    if (this.running.has(id)) {
      this.skipTick(id);
      return;
    }
    // A store that cannot be reached (no lock to take, no state to read): this tick is skipped.
    await this.run(entry, 'schedule').catch((err: unknown) => this.o.logger.warn({ err, poller: id }, `poller ${id}: tick skipped, the store is unavailable`));
  }

  /** POST /api/pollers/:id/run: one run now, backoff or not; refused while one is going. */
  async runNow(id: string): Promise<RunReport> {
    if (this.stopping) throw new Unavailable('the service is stopping');
    const entry = this.entries.get(id);
    if (!entry) throw new NotFound(`no poller "${id}" is in force`);
    if (!entry.notifier) throw new Conflict(`poller ${id} cannot run: ${entry.problem}`);
    const going = this.running.get(id);
    if (going) {
      throw new Conflict(`poller ${id} is running (a ${going.trigger} run since ${new Date(going.startedAt).toISOString()}): try again when it ends`, {
        runningSince: new Date(going.startedAt).toISOString(),
      });
    }
    const attempt = await this.run(entry, 'manual');
    if (typeof attempt === 'string') throw new Conflict(`poller ${id} is running on another replica: try again when it ends`);
    return attempt;
  }

  /** The source of a poller in force (for @bot replies); whether it takes replies is the flow's `replies`. */
  sourceFor(id: string): FeedSource | undefined {
    return this.entries.get(id)?.source;
  }

  /** GET /api/pollers: every poller in force with its schedule, state and counts. No secret, no webhook key. */
  async list(): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const entry of [...this.entries.values()].sort((a, b) => (a.flow.id < b.flow.id ? -1 : 1))) {
      const { state } = await this.stateOf(entry.flow.id);
      out.push(pollerListing(entry.flow, state, { scheduled: Boolean(entry.task), problem: entry.problem, nextRun: entry.task?.getNextRun(), running: this.running.get(entry.flow.id) }));
    }
    return out;
  }

  private run(entry: Entry, trigger: RunTrigger): Promise<Attempt> {
    const abort = new AbortController();
    const id = entry.flow.id;
    // Registered before the first await inside locked() yields: a second tick sees it.
    const promise = this.locked(entry, trigger, abort.signal).finally(() => this.running.delete(id));
    this.running.set(id, { trigger, startedAt: this.o.clock.now(), promise, abort });
    return promise;
  }

  /** One run on one replica: under the poller's lock, from the state as stored. */
  private async locked(entry: Entry, trigger: RunTrigger, stop: AbortSignal): Promise<Attempt> {
    const id = entry.flow.id;
    const lock = await this.o.store.tryLock(`poller:${id}`);
    if (!lock) return 'elsewhere';
    try {
      const { state, skips } = await this.stateOf(id);
      if (trigger === 'schedule' && state.backoffUntil !== undefined && this.o.clock.now() < state.backoffUntil) {
        this.skipTick(id);
        return 'backing-off';
      }
      // A lost lock (its database connection dropped) stops the run after the card in hand, as a stop does.
      return await this.execute(entry, trigger, state, AbortSignal.any([stop, lock.signal]), lock.signal, skips);
    } finally {
      await lock.release();
    }
  }

  /** `skips`: the ticks skipped here that `state` counts; saved with it. */
  private async execute(entry: Entry, trigger: RunTrigger, state: PollerState, signal: AbortSignal, lockLost: AbortSignal, skips: number): Promise<RunReport> {
    const { flow } = entry;
    const { clock, store } = this.o;
    const startedAt = clock.now();
    const postNewReplies = followsReplies(flow, entry.source) ? this.o.postNewReplies : undefined;
    const followed = store.collection<FollowedCard>(FOLLOWED_CARDS);
    const deps: PollRunDeps = {
      source: entry.source,
      notifier: entry.notifier!,
      seen: store.keys<number>(POLLER_SEEN),
      cards: store.collection<PostedCard>(POSTED_CARDS),
      cardByMessage: store.keys<string>(CARD_BY_MESSAGE),
      clock,
      logger: this.o.logger,
      cardRetentionMs: CARD_RETENTION_MS,
      ...(postNewReplies ? { followed } : {}),
    };
    let outcome: RunOutcome | undefined;
    let replies: RepliesOutcome | undefined;
    let error: string | undefined;
    let backOff = false;
    try {
      outcome = await pollOnce(flow, state.cursor, deps, signal);
      if (outcome.failed.length) {
        const first = outcome.failed[0]!;
        error = `${outcome.failed.length} item(s) not posted, they are tried again next run: ${first.error}`;
        backOff = outcome.failed.some((f) => f.retryable);
      }
      if (postNewReplies) {
        replies = await checkNewReplies(flow, { source: entry.source, followed, postNewReplies, lastChecked: entry.lastChecked, clock }, signal);
        // The items went through: a replies feed that fails is the run's error, without holding the items back.
        const first = replies.failed[0];
        if (first && !error) error = `new comments of ${replies.failed.length} item(s) not posted, tried again next run: item ${first.itemId}: ${first.error}`;
      }
    } catch (err) {
      // A source failure (4xx/5xx, not JSON, unexpected shape, timeout) or a store failure: nothing moves.
      error = err instanceof FeedError ? `source: ${err.message}` : `${(err as Error)?.message ?? String(err)}`;
      backOff = true;
    }
    const finishedAt = clock.now();
    if (outcome) {
      state.cursor = outcome.cursor;
      state.counts.posted += outcome.posted.length;
      state.counts.failedPosts += outcome.failed.length;
      state.counts.repliesPosted += replies?.posted ?? 0;
      if (outcome.posted.length) this.o.logger.info({ poller: flow.id, posted: outcome.posted.length, deferred: outcome.deferred }, 'poller posted new items');
    }
    state.counts.runs++;
    this.o.metrics?.pollerRun(flow.id, !error, outcome?.posted.length ?? 0, outcome?.failed.length ?? 0);
    if (error) this.recordError(state, error, backOff, finishedAt);
    else this.clearError(state);
    const summary = summaryOf(trigger, startedAt, finishedAt, outcome, error, replies);
    state.lastRun = summary;
    state.updatedAt = new Date(finishedAt).toISOString();
    if (lockLost.aborted) {
      // Another replica may run the poller now, from the stored state: ours would overwrite its cursor.
      this.o.logger.warn({ poller: flow.id }, `poller ${flow.id}: lost its lock mid-run; the items posted are marked, the state is left to the next run`);
    } else {
      await store.collection<PollerState>(POLLER_STATE).put({ ...state, counts: { ...state.counts } });
      this.unsavedSkips.set(flow.id, (this.unsavedSkips.get(flow.id) ?? 0) - skips);
    }
    return reportOf(flow.id, summary, outcome, state.cursor);
  }

  /** Logged when the error changes, not on every tick; backs off when trying again soon would not help. */
  private recordError(state: PollerState, message: string, backOff: boolean, now: number): void {
    const at = new Date(now).toISOString();
    if (state.lastError?.message !== message) {
      this.o.logger.error({ poller: state.id }, `poller ${state.id}: ${message}`);
      state.lastError = { message, at, firstAt: at };
    } else {
      state.lastError = { ...state.lastError, at };
    }
    if (!backOff) return;
    state.counts.failedRuns++;
    state.failures++;
    state.backoffUntil = now + backoffDelay(state.failures, this.o.backoffBaseMs ?? 1_000, this.o.backoffCapMs ?? 300_000, this.o.random);
  }

  private clearError(state: PollerState): void {
    if (state.lastError) this.o.logger.info({ poller: state.id }, `poller ${state.id} works again`);
    delete state.lastError;
    delete state.backoffUntil;
    state.failures = 0;
  }

  private skipTick(id: string): void {
    this.unsavedSkips.set(id, (this.unsavedSkips.get(id) ?? 0) + 1);
  }

  /** The state as stored (another replica may have run the poller since), plus the ticks skipped here and not saved yet. */
  private async stateOf(id: string): Promise<{ state: PollerState; skips: number }> {
    const stored = await this.o.store.collection<PollerState>(POLLER_STATE).get(id);
    const fresh = freshState(id, this.o.clock.now());
    // A state saved by an older version lacks the newer counts.
    const state = stored ? { ...stored, counts: { ...fresh.counts, ...stored.counts } } : fresh;
    const skips = this.unsavedSkips.get(id) ?? 0;
    state.counts.skippedTicks += skips;
    return { state, skips };
  }
}
