/**
 * Coalesces the writes of one document: every commit() made in the same tick, or while a write
 * is in flight, shares the next single write, and each caller's promise resolves only after a
 * write that started after its commit() has reached the disk.
 */
export class BatchedWriter {
  private pending: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null;
  private inFlight: Promise<void> | null = null;
  private scheduled = false;
  lastError: unknown = null;

  constructor(private readonly writeNow: () => Promise<void>) {}

  commit(): Promise<void> {
    if (!this.pending) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.pending = { promise, resolve, reject };
    }
    this.schedule();
    return this.pending.promise;
  }

  /** Resolves when nothing is pending or in flight. */
  async idle(): Promise<void> {
    while (this.inFlight || this.pending) {
      await (this.pending?.promise ?? this.inFlight)?.catch(() => undefined);
    }
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    // setImmediate lets every request handled in this tick join the same write.
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private run(): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = null;
    this.inFlight = this.writeNow().then(
      () => {
        this.lastError = null;
        batch.resolve();
      },
      (err) => {
        this.lastError = err;
        batch.reject(err);
      },
    );
    void this.inFlight.finally(() => {
      this.inFlight = null;
      if (this.pending) this.schedule();
    });
  }
}
