import PQueue from 'p-queue';

/**
 * Lark's documented limits for bots: about 50 messages/s per app and 5/s per chat; a card
 * update is 5/s per message. Every call is admitted by the per-app queue and by the queue of
 * its key (chat id or message id).
 */
export class LarkRateLimiter {
  private readonly app: PQueue;
  private readonly perKey = new Map<string, PQueue>();

  constructor(
    appPerSecond = 50,
    private readonly keyPerSecond = 5,
  ) {
    this.app = new PQueue({ intervalCap: appPerSecond, interval: 1000 });
  }

  schedule<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let q = this.perKey.get(key);
    if (!q) {
      q = new PQueue({ intervalCap: this.keyPerSecond, interval: 1000, concurrency: this.keyPerSecond });
      this.perKey.set(key, q);
      // Forget idle keys so the map does not grow with every chat and message ever seen.
      q.on('idle', () => {
        if (q!.size === 0 && q!.pending === 0) this.perKey.delete(key);
      });
    }
    return q.add(() => this.app.add(fn)) as Promise<T>;
  }
}
