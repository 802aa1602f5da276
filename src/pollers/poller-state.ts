import type { StoredRecord } from '../store/store.js';
import type { RepliesOutcome } from './follow-replies.js';
import type { FailedItem, PostedItem, RunOutcome } from './poll-run.js';

/** What a poller remembers between runs and restarts (collection "poller-state", id = poller id). */
export interface PollerState extends StoredRecord {
  id: string;
  /** Everything created before it (ms) is done; absent before the first successful run. */
  cursor?: number;
  lastRun?: RunSummary;
  /** The error in force: `firstAt` is when it began, `at` when it was last seen. */
  lastError?: { message: string; at: string; firstAt: string };
  /** Failed runs in a row: the backoff grows with it. */
  failures: number;
  /** Ticks before this time (ms) are skipped. */
  backoffUntil?: number;
  counts: { runs: number; posted: number; failedPosts: number; failedRuns: number; skippedTicks: number; repliesPosted: number };
  updatedAt: string;
}

export type RunTrigger = 'schedule' | 'manual';

export interface RunSummary {
  trigger: RunTrigger;
  startedAt: string;
  finishedAt: string;
  window?: { since: string; until: string };
  listed: number;
  outOfWindow: number;
  alreadyPosted: number;
  posted: number;
  failed: number;
  deferred: number;
  /** The new-reply reminder's part of the run, when the source has a replies feed. */
  replies?: RepliesOutcome;
  error?: string;
}

/** What POST /api/pollers/:id/run answers: the run's summary with the items it posted or could not. */
export interface RunReport extends Omit<RunSummary, 'posted' | 'failed'> {
  poller: string;
  ok: boolean;
  posted: PostedItem[];
  failed: FailedItem[];
  cursor: string | null;
}

export const POLLER_STATE = 'poller-state';
/** KeySpace of the items posted per poller: `${pollerId}:${itemId}` → when. */
export const POLLER_SEEN = 'poller-seen';

export function freshState(id: string, now: number): PollerState {
  return { id, failures: 0, counts: { runs: 0, posted: 0, failedPosts: 0, failedRuns: 0, skippedTicks: 0, repliesPosted: 0 }, updatedAt: new Date(now).toISOString() };
}

const iso = (ms: number) => new Date(ms).toISOString();

export function summaryOf(
  trigger: RunTrigger,
  startedAt: number,
  finishedAt: number,
  outcome: RunOutcome | undefined,
  error: string | undefined,
  replies?: RepliesOutcome,
): RunSummary {
  return {
    trigger,
    startedAt: iso(startedAt),
    finishedAt: iso(finishedAt),
    ...(outcome ? { window: { since: iso(outcome.window.since), until: iso(outcome.window.until) } } : {}),
    listed: outcome?.listed ?? 0,
    outOfWindow: outcome?.outOfWindow ?? 0,
    alreadyPosted: outcome?.alreadyPosted ?? 0,
    posted: outcome?.posted.length ?? 0,
    failed: outcome?.failed.length ?? 0,
    deferred: outcome?.deferred ?? 0,
    ...(replies ? { replies } : {}),
    ...(error ? { error } : {}),
  };
}

export function reportOf(pollerId: string, summary: RunSummary, outcome: RunOutcome | undefined, cursor: number | undefined): RunReport {
  return {
    poller: pollerId,
    ok: !summary.error,
    ...summary,
    posted: outcome?.posted ?? [],
    failed: outcome?.failed ?? [],
    cursor: cursor === undefined ? null : iso(cursor),
  };
}
