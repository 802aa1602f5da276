import type { Stage } from './flow-schema.js';

/** One timer per run stage waiting for an async callback; re-armed from the record after a restart. */
export class CallbackTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  arm(runId: string, stage: Stage, delayMs: number, onExpire: () => void): void {
    const key = `${runId}:${stage}`;
    if (this.timers.has(key)) return;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      onExpire();
    }, delayMs);
    timer.unref();
    this.timers.set(key, timer);
  }

  clear(runId: string, stage: Stage): void {
    const key = `${runId}:${stage}`;
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
  }

  clearAll(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
