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

  it('does not keep the slots of taken items: its array stays within twice what it holds (or 1,024)', () => {
    const q = new Fifo<number>();
    const slots = () => (q as unknown as { items: unknown[] }).items.length;
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
