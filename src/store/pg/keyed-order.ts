/**
 * Runs the writes of one key in the order they were called, writes of different keys at once.
 * The pool runs statements on several connections, so without this a put and a following
 * archive of the same record, both in flight, could commit in either order.
 */
export class KeyedOrder {
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly pending = new Set<Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    const result = previous ? previous.then(work) : work();
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    this.pending.add(tail);
    void tail.then(() => {
      this.pending.delete(tail);
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Settles once every write called so far has settled. */
  async idle(): Promise<void> {
    await Promise.all([...this.pending]);
  }
}
