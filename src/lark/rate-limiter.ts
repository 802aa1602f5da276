import PQueue from 'p-queue';

const WINDOW_MS = 1000;

/**
 * Lark's documented limits for bots: about 50 messages/s per app and 5/s per chat; a card
 * update is 5/s per message. Every call is admitted by the per-app queue and by the queue of
 * its key (chat id or message id).
 */
export class LarkRateLimiter {
  private readonly app: PQueue;
  private readonly perKey = new Map<string, { queue: PQueue; forget?: NodeJS.Timeout }>();

  constructor(
    appPerSecond = 50,
    private readonly keyPerSecond = 5,
  ) {
    this.app = new PQueue({ intervalCap: appPerSecond, interval: WINDOW_MS });
  }

  schedule<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.perKey.get(key);
    if (!entry) {
      const queue = new PQueue({ intervalCap: this.keyPerSecond, interval: WINDOW_MS, concurrency: this.keyPerSecond });
      const created = { queue } as { queue: PQueue; forget?: NodeJS.Timeout };
      // Forget an idle key so the map does not grow with every chat and message ever seen, but
      // only after a full window: forgetting at once would also forget the calls just made.
      queue.on('idle', () => {
        clearTimeout(created.forget);
        created.forget = setTimeout(() => {
          if (queue.size === 0 && queue.pending === 0) this.perKey.delete(key);
        }, WINDOW_MS);
        created.forget.unref();
      });
      entry = created;
      this.perKey.set(key, entry);
    }
    clearTimeout(entry.forget);
    return entry.queue.add(() => this.app.add(fn)) as Promise<T>;
  }

  /** Keys currently tracked (for tests and diagnostics). */
  get trackedKeys(): number {
    return this.perKey.size;
  }
}
