/**
 * A first-in first-out queue whose push and shift cost the same at any length. Array#shift
 * moves every element once an array outgrows V8's in-place trimming (about 16,000 entries on
 * Node 20): draining 50,000 waiters that way blocked the event loop for 2 s.
 */
export class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  constructor(first?: Iterable<T>) {
    if (first) for (const item of first) this.items.push(item);
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The first item, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.items[this.head]; // head never passes the end: past the last item this is undefined
  }

  /** Takes the first item out; undefined when empty. */
  shift(): T | undefined {
    // Equivalent mutants (README, "Tests that bite"): without this line an empty queue would write
    // one undefined slot and reset it at once; the answer is undefined either way.
    // Stryker disable next-line ConditionalExpression,EqualityOperator
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined; // no longer reachable from here
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.items.length) {
      // The taken slots are at least half the array: drop them, once per doubling (amortised O(1)).
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

const COMPACT_AFTER = 1024;
