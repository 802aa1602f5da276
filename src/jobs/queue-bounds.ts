import type { Clock } from '../clock.js';
import { AppError, Busy, TooLarge } from '../errors.js';
import type { Logger } from '../log.js';

/** What a job weighs in the queue: its unfinished records, and their ids' and the URL's UTF-8 bytes. */
export interface QueueCost {
  records: number;
  bytes: number;
}

export interface QueueLimits {
  maxRecords: number;
  maxBytes: number;
  maxRecordsPerClient: number;
  maxBytesPerClient: number;
}

const VARIABLES = {
  records: { all: 'TASK_SYNC_MAX_QUEUED_RECORDS', client: 'TASK_SYNC_MAX_QUEUED_RECORDS_PER_CLIENT' },
  bytes: { all: 'TASK_SYNC_MAX_QUEUED_BYTES', client: 'TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT' },
} as const;

/** The seconds over which finished records are counted to guess when room will be free again. */
const RATE_WINDOW_SEC = 30;
/** At most one warning per this many ms while requests are being refused. */
const WARN_EVERY_MS = 10_000;

/**
 * Bounds the unfinished work of task-sync, per client and in all, so that a flood of jobs cannot
 * take the process's memory or starve other clients. `admit` checks and takes the room in one
 * synchronous step, so concurrent requests at the bound never overshoot it.
 */
export class QueueBounds {
  private readonly byClient = new Map<string, QueueCost>();
  private readonly total: QueueCost = { records: 0, bytes: 0 };
  /** Records finished per second, in a ring of RATE_WINDOW_SEC slots. */
  private readonly finished = new Array<number>(RATE_WINDOW_SEC).fill(0);
  private finishedSecond = 0;
  private refusedSinceWarning = 0;
  private lastWarningAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly limits: QueueLimits,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /**
   * Takes room for a new job, or throws: 429 when this client's share is full, 503 when the whole
   * queue is, 413 when the job alone is larger than a client's share. Nothing is taken on a throw.
   */
  admit(client: string, cost: QueueCost): void {
    const { limits } = this;
    if (cost.bytes > limits.maxBytesPerClient) {
      throw new TooLarge(`this job's record ids and URL take ${cost.bytes} bytes, more than one client may queue (TASK_SYNC_MAX_QUEUED_BYTES_PER_CLIENT=${limits.maxBytesPerClient}); send fewer or shorter records per job`, {
        bound: VARIABLES.bytes.client,
        limit: limits.maxBytesPerClient,
        requested: cost.bytes,
      });
    }
    const mine = this.byClient.get(client) ?? { records: 0, bytes: 0 };
    for (const unit of ['records', 'bytes'] as const) {
      const clientLimit = unit === 'records' ? limits.maxRecordsPerClient : limits.maxBytesPerClient;
      if (mine[unit] + cost[unit] > clientLimit) {
        const retryAfter = this.retryAfterSec(mine.records + cost.records - limits.maxRecordsPerClient);
        this.noteRefused(VARIABLES[unit].client, client);
        throw new Busy(
          `this client's share of the task-sync queue is full: ${mine[unit]} ${unit} queued + ${cost[unit]} in this job > ${clientLimit} (${VARIABLES[unit].client}). Nothing was created; retry after ${retryAfter} s, when your jobs have progressed, or ask the operator to raise ${VARIABLES[unit].client}`,
          retryAfter,
          { bound: VARIABLES[unit].client, scope: 'client', unit, limit: clientLimit, queued: mine[unit], requested: cost[unit], retryAfterSec: retryAfter },
        );
      }
    }
    for (const unit of ['records', 'bytes'] as const) {
      const limit = unit === 'records' ? limits.maxRecords : limits.maxBytes;
      if (this.total[unit] + cost[unit] > limit) {
        const retryAfter = this.retryAfterSec(this.total.records + cost.records - limits.maxRecords);
        this.noteRefused(VARIABLES[unit].all, client);
        throw new AppError(
          'unavailable',
          `the task-sync queue is full: ${this.total[unit]} ${unit} queued by all clients + ${cost[unit]} in this job > ${limit} (${VARIABLES[unit].all}). Nothing was created; retry after ${retryAfter} s, or ask the operator to raise ${VARIABLES[unit].all}`,
          { bound: VARIABLES[unit].all, scope: 'all', unit, limit, queued: this.total[unit], requested: cost[unit], retryAfterSec: retryAfter },
          retryAfter,
        );
      }
    }
    this.add(client, cost);
  }

  /** Counts work that is already accepted (jobs resumed at start), bound or not. */
  add(client: string, cost: QueueCost): void {
    const mine = this.byClient.get(client) ?? { records: 0, bytes: 0 };
    mine.records += cost.records;
    mine.bytes += cost.bytes;
    this.byClient.set(client, mine);
    this.total.records += cost.records;
    this.total.bytes += cost.bytes;
  }

  /** Gives room back: records that got their final result (`done`), or a job that was never made. */
  remove(client: string, cost: QueueCost, done: boolean): void {
    const mine = this.byClient.get(client);
    if (!mine) return;
    mine.records -= cost.records;
    mine.bytes -= cost.bytes;
    if (mine.records <= 0 && mine.bytes <= 0) this.byClient.delete(client);
    this.total.records -= cost.records;
    this.total.bytes -= cost.bytes;
    if (done && cost.records > 0) this.noteFinished(cost.records);
  }

  /** Every client with unfinished work, and how much (GET /api/status). */
  clients(): Array<{ client: string } & QueueCost> {
    return [...this.byClient].map(([client, c]) => ({ client, records: c.records, bytes: c.bytes }));
  }

  usage(client?: string): QueueCost {
    const c = client === undefined ? this.total : (this.byClient.get(client) ?? { records: 0, bytes: 0 });
    return { records: c.records, bytes: c.bytes };
  }

  /** One warning per WARN_EVERY_MS while refusing, with the count since the last one: the operator sees it, the log does not flood. */
  private noteRefused(bound: string, client: string): void {
    this.refusedSinceWarning++;
    const now = this.clock.now();
    if (now - this.lastWarningAt < WARN_EVERY_MS) return;
    this.logger.warn(
      { bound, client, refused: this.refusedSinceWarning, queued: this.usage(), clientQueued: this.usage(client) },
      `task-sync queue at its bound (${bound}): refusing new jobs with 429/503 + Retry-After`,
    );
    this.refusedSinceWarning = 0;
    this.lastWarningAt = now;
  }

  /** How long until `excess` records have finished at the recent pace: 1 to 60 s, 30 when nothing finished lately. */
  private retryAfterSec(excess: number): number {
    this.noteFinished(0);
    const rate = this.finished.reduce((a, b) => a + b, 0) / RATE_WINDOW_SEC;
    if (rate === 0) return 30;
    return Math.min(60, Math.max(1, Math.ceil(Math.max(1, excess) / rate)));
  }

  private noteFinished(n: number): void {
    const second = Math.floor(this.clock.now() / 1000);
    // Seconds that passed with nothing noted are zero; a jump beyond the window clears it all.
    for (let s = this.finishedSecond + 1; s <= second && s <= this.finishedSecond + RATE_WINDOW_SEC; s++) this.finished[s % RATE_WINDOW_SEC] = 0;
    this.finishedSecond = Math.max(this.finishedSecond, second);
    this.finished[second % RATE_WINDOW_SEC]! += n;
  }
}

/** The weight of a job's unfinished records. The URL counts once per job. */
export function costOf(webhookUrl: string, recordIds: readonly string[]): QueueCost {
  let bytes = Buffer.byteLength(webhookUrl);
  for (const id of recordIds) bytes += Buffer.byteLength(id);
  return { records: recordIds.length, bytes };
}
