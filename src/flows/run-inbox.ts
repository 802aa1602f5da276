import type { Clock } from '../clock.js';
import type { KeySpace, RecordCollection, StoredRecord } from '../store/store.js';
import type { BusinessResult } from './business-call.js';
import type { Stage } from './flow-schema.js';
import type { StageRun } from './run.js';

/**
 * Why an inbox: Lark wants its 200 within seconds and a business API may wait for our answer to
 * its callback, while a run's chain can sit in a slow business call or Lark call for many seconds.
 * So intake never touches the run record: it writes one small durable item and answers once that
 * item is on disk; the run's chain (the only writer of the run record) drains the items in order.
 * Nothing is lost when two events race (each is its own item), when an event lands while the
 * chain is mid-step (the item waits for the next drain), or on a crash (items stay until the run
 * that applied them is saved, and applying one twice is a no-op).
 */
type ItemBody =
  | { kind: 'task'; taskId: string; flowId: string; approvalCode: string }
  | { kind: 'status'; taskId: string; status: string }
  | { kind: 'retry'; stage: Stage; seen: string; operator: string };

export type InboxItem = StoredRecord & { runId: string; at: number; seq: number } & ItemBody;

type NewItem = { runId: string } & ItemBody;

/** A business result that came to the callback URL, kept until its run applies it (and after, to refuse a second one). */
export interface CallbackResult {
  result: BusinessResult;
  at: number;
}

// A callback may come up to callbackTimeoutMs (max 7 days) after our call; its claim must outlive that.
const CALLBACK_CLAIM_MS = 8 * 24 * 3_600_000;

export class RunInbox {
  private seq = 0;

  constructor(
    private readonly items: RecordCollection<InboxItem>,
    private readonly callbacks: KeySpace<CallbackResult>,
    private readonly clock: Clock,
  ) {}

  /** Records an item durably. Ids are derived from the item, so a redelivery is the same item. */
  async add(item: NewItem): Promise<'added' | 'duplicate'> {
    const id = itemId(item);
    if (await this.items.get(id)) return 'duplicate';
    await this.items.put({ ...item, id, at: this.clock.now(), seq: this.seq++ } as InboxItem);
    return 'added';
  }

  /** The run's items in arrival order. */
  async forRun(runId: string): Promise<InboxItem[]> {
    return (await this.items.liveWhere('runId', runId)).sort((a, b) => a.at - b.at || a.seq - b.seq);
  }

  async hasItemsFor(runId: string): Promise<boolean> {
    return (await this.items.liveWhere('runId', runId)).length > 0;
  }

  /**
   * Runs with items whose lease ran out (each item is leased to the replica that recorded it):
   * news whose replica died before its turn, or that waits for a flow or a Retry. Each item is
   * claimed by one replica; it is then leased to it for another lease time.
   */
  async claimStale(limit: number): Promise<string[]> {
    return [...new Set((await this.items.claimStale(limit)).map((i) => i.runId))];
  }

  /** Runs with items waiting (picked up again after a restart). */
  async runIds(): Promise<string[]> {
    return [...new Set((await this.items.live()).map((i) => i.runId))];
  }

  /**
   * Drops applied items. The removals are issued synchronously, so when called in the same tick
   * as the run's save they share its write: the run and its acknowledged items change together.
   */
  remove(ids: readonly string[]): Array<Promise<void>> {
    return ids.map((id) => this.items.remove(id));
  }

  /**
   * Takes the one result slot of this stage attempt: true for the first callback, false for any
   * later one (check and set in one step, so of two concurrent callbacks exactly one wins).
   */
  claimCallback(runId: string, stage: Stage, s: StageRun, result: BusinessResult): Promise<boolean> {
    const now = this.clock.now();
    return this.callbacks.claim(callbackKey(runId, stage, s), { result, at: now }, now + CALLBACK_CLAIM_MS);
  }

  async callbackFor(runId: string, stage: Stage, s: StageRun): Promise<BusinessResult | undefined> {
    return (await this.callbacks.get(callbackKey(runId, stage, s)))?.result;
  }
}

function itemId(item: NewItem): string {
  switch (item.kind) {
    case 'task':
      return JSON.stringify([item.runId, 'task', item.taskId]);
    case 'status':
      return JSON.stringify([item.runId, 'status', item.taskId, item.status]);
    case 'retry':
      return JSON.stringify([item.runId, 'retry', item.seen]);
  }
}

/** One slot per attempt: a new task (a return to the node) or a Retry opens a new one. */
function callbackKey(runId: string, stage: Stage, s: StageRun): string {
  return JSON.stringify([runId, stage, s.taskId, s.retries]);
}
