import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { RecordCollection, StoredRecord } from '../store/store.js';
import type { Stage } from './flow-schema.js';
import type { Run } from './run.js';

/**
 * Why wake-ups: with several replicas, the replica that started a run's turn, or armed a timer
 * for its callback deadline, may die; another replica must then take the run up. A wake-up is a
 * small live record whose lease (store.ts) says by when someone must look at the run:
 * - a turn mark, written (leased to this replica) once a turn holds the run's lock and removed
 *   when the turn ends: a turn cut by a crash leaves it, its lease runs out, and another replica's
 *   sweep claims it (FOR UPDATE SKIP LOCKED) and runs the turn again;
 * - a deadline mark per stage waiting for an async callback, leased until that deadline: if the
 *   replica whose timer would fire is gone, the sweep claims the mark at the deadline.
 * Runs waiting for approvers need nothing: their next event starts the next turn.
 */
export interface RunWakeup extends StoredRecord {
  runId: string;
  kind: 'turn' | 'deadline';
  /** The callback deadline (ms since epoch), for a deadline mark. */
  at?: number;
}

/** A deadline mark is looked at a little after the deadline: the timer of the replica that armed it fires first. */
const DEADLINE_SLACK_MS = 2_000;

export class RunWakeups {
  constructor(
    private readonly marks: RecordCollection<RunWakeup>,
    private readonly clock: Clock,
  ) {}

  /** Writes the turn mark of a turn that holds the run's lock; durable before the turn's first step. */
  async turnStarted(runId: string): Promise<string> {
    const id = `turn|${runId}|${randomUUID()}`;
    await this.marks.put({ id, runId, kind: 'turn' });
    return id;
  }

  /** Removes turn marks once a turn ended (ours, and those a sweep claimed for this run). */
  async turnsEnded(ids: readonly string[]): Promise<void> {
    await Promise.all(ids.map((id) => this.marks.remove(id)));
  }

  /**
   * After a turn: a deadline mark for each stage waiting for its callback, none for the others.
   * A mark that exists keeps its lease (its holder set it to the deadline); a new one, or one
   * this replica claimed, is leased until the deadline.
   */
  async park(runId: string, run: Run | undefined): Promise<void> {
    for (const stage of ['check', 'execute'] as Stage[]) {
      const id = `deadline|${runId}|${stage}`;
      const s = run?.status === 'active' ? run.stages[stage] : undefined;
      if (s?.state === 'waiting_callback' && s.callbackDeadline !== undefined) {
        const mark = await this.marks.get(id);
        if (mark?.at !== s.callbackDeadline) await this.marks.put({ id, runId, kind: 'deadline', at: s.callbackDeadline });
        await this.marks.renew([id], Math.max(0, s.callbackDeadline - this.clock.now()) + DEADLINE_SLACK_MS);
      } else if (await this.marks.get(id)) {
        await this.marks.remove(id);
      }
    }
  }

  /** Marks whose lease ran out (a dead replica's turn, a deadline reached), each to one replica. */
  claimStale(limit: number): Promise<RunWakeup[]> {
    return this.marks.claimStale(limit);
  }
}
