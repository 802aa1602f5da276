import { describe, expect, it } from 'vitest';
import { Fifo } from '../src/fifo.js';

describe('Fifo', () => {
  it('gives items back in the order they came, and undefined once empty', () => {
    const q = new Fifo<number>([1, 2]);
    q.push(3);
    expect(q.length).toBe(3);
    expect(q.peek()).toBe(1);
    expect([q.shift(), q.shift()]).toEqual([1, 2]);
    q.push(4);
    expect(q.length).toBe(2);
    expect([q.shift(), q.shift(), q.shift()]).toEqual([3, 4, undefined]);
    expect(q.length).toBe(0);
    expect(q.peek()).toBeUndefined();
  });

  it('keeps order and length across compactions while items keep coming', () => {
    const q = new Fifo<number>();
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 997; i++) q.push(next++);
      for (let i = 0; i < 613; i++) expect(q.shift()).toBe(expected++);
      expect(q.length).toBe(next - expected);
      expect(q.peek()).toBe(expected);
    }
    while (q.length) expect(q.shift()).toBe(expected++);
    expect(expected).toBe(next);
  });

  // The policy, in slots of its array: reset when emptied; past 1,024 taken, cut once the taken
  // slots are half the array (so each item is copied O(1) times, and a cut never happens per shift).
  const slotsOf = (q: Fifo<unknown>) => (q as unknown as { items: unknown[] }).items.length;
  const filled = (n: number) => {
    const q = new Fifo<number>();
    for (let i = 0; i < n; i++) q.push(i);
    return q;
  };
  const take = (q: Fifo<number>, n: number) => {
    for (let i = 0; i < n; i++) q.shift();
  };

  it('resets its array once emptied, and keeps a small one as it is', () => {
    const q = filled(100);
    take(q, 60);
    expect(slotsOf(q)).toBe(100); // 60 taken of 100: under 1,024, no cut
    take(q, 40);
    expect(slotsOf(q)).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect(slotsOf(q)).toBe(0);
  });

  it('cuts the taken slots at 1,024 taken when they are half the array, not before', () => {
    const even = filled(2048);
    take(even, 1023);
    expect(slotsOf(even)).toBe(2048);
    take(even, 1);
    expect(slotsOf(even)).toBe(1024); // 1,024 taken of 2,048: cut
    expect(even.peek()).toBe(1024);

    const long = filled(3000);
    take(long, 1100);
    expect(slotsOf(long)).toBe(3000); // 1,100 of 3,000: not yet half
    take(long, 399);
    expect(slotsOf(long)).toBe(3000);
    take(long, 1);
    expect(slotsOf(long)).toBe(1500); // 1,500 of 3,000: cut
    expect([long.length, long.peek()]).toEqual([1500, 1500]);
  });

  it('does not keep the slots of taken items: its array stays within twice what it holds (or 1,024)', () => {
    const q = new Fifo<number>();
    const slots = () => slotsOf(q);
    for (let i = 0; i < 100_000; i++) q.push(i);
    for (let i = 0; i < 99_990; i++) q.shift();
    expect(q.length).toBe(10);
    expect(slots()).toBeLessThanOrEqual(2 * 1024);
    // A queue that is never empty (a steady trickle) is compacted all the same.
    for (let i = 0; i < 100_000; i++) {
      q.push(i);
      q.shift();
    }
    expect(q.length).toBe(10);
    expect(slots()).toBeLessThanOrEqual(2 * 1024);
    expect(q.peek()).toBe(99_990);
  });
});
