import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { KeySpace } from '../store/store.js';
import type { Stage } from './flow-schema.js';
import { failedStageOf, type Run } from './run.js';

/** One approval run that ended failed, as GET /api/status lists it. */
export interface RunFailure {
  flow: string;
  runId: string;
  /** The stage that failed (absent when the approval could not even be looked up). */
  stage?: Stage;
  /** The Lark step that was refused, when Lark refused (approve, reject, look up). */
  larkStep?: string;
  reason: string;
  at: string;
}

/** How many failures are kept (the newest). */
export const RECENT_FAILURES_KEPT = 20;
const MAX_REASON = 500;
const KEPT_FOR_MS = 30 * 86_400_000;
const KEY = 'recent';

/**
 * The last RECENT_FAILURES_KEPT approval runs that failed, newest first, kept in the store (one
 * small key, written only when a run fails) so a restart does not hide what failed before it.
 * Finished runs live in the archive, which is not listed: this is the index of the failed ones.
 */
export class RecentRunFailures {
  private loaded: Promise<RunFailure[]> | undefined;

  constructor(
    private readonly keys: KeySpace<RunFailure[]>,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Notes a run that reached an end state; only failed ones are kept. Never throws, never waits. */
  note(run: Readonly<Run>): void {
    if (run.status !== 'failed') return;
    const stage = failedStageOf(run as Run);
    const failure: RunFailure = {
      flow: run.flowId,
      runId: run.id,
      ...(stage ? { stage } : {}),
      ...(run.larkFailure ? { larkStep: run.larkFailure.step } : {}),
      reason: cut(run.error ?? run.steps.at(-1)?.detail ?? 'failed'),
      at: run.updatedAt,
    };
    void this.load()
      .then((list) => {
        // A run that failed again (after a Retry) shows once, with its latest failure.
        const kept = [failure, ...list.filter((f) => f.runId !== failure.runId)].slice(0, RECENT_FAILURES_KEPT);
        list.splice(0, list.length, ...kept);
        return this.keys.set(KEY, [...kept], this.clock.now() + KEPT_FOR_MS);
      })
      .catch((err: unknown) => this.logger.warn({ err, runId: run.id }, 'could not record a failed run for GET /api/status'));
  }

  /** Newest first. */
  async recent(): Promise<RunFailure[]> {
    return [...(await this.load())];
  }

  private load(): Promise<RunFailure[]> {
    this.loaded ??= this.keys.get(KEY).then(
      (v) => (Array.isArray(v) ? v.slice(0, RECENT_FAILURES_KEPT) : []),
      () => [],
    );
    return this.loaded;
  }
}

function cut(text: string): string {
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON - 1)}…` : text;
}
