import type { Clock } from '../clock.js';
import type { HeldLock, StoredRecord } from './store.js';

interface Lease {
  owner: string;
  until: number;
}

/**
 * Leases on the live records of one collection, for a store that one process owns (the journal
 * store holds its data directory's lock). Kept in memory on purpose: after a restart no lease is
 * held, so every live record is stale and claimStale hands it to the new process, as a
 * PostgreSQL replica's expired lease would be.
 */
export class LocalLeases {
  private readonly leases = new Map<string, Lease>();

  constructor(
    private readonly owner: string,
    private readonly clock: Clock,
    private readonly defaultLeaseMs: number,
  ) {}

  /** A record became live: its creator holds it. */
  started(id: string): void {
    this.leases.set(id, { owner: this.owner, until: this.clock.now() + this.defaultLeaseMs });
  }

  ended(id: string): void {
    this.leases.delete(id);
  }

  holds(id: string): boolean {
    return this.leases.get(id)?.owner === this.owner;
  }

  claimStale<T extends StoredRecord>(live: Iterable<T>, limit: number, leaseMs = this.defaultLeaseMs): T[] {
    const now = this.clock.now();
    const taken: T[] = [];
    for (const record of live) {
      if (taken.length >= limit) break;
      const lease = this.leases.get(record.id);
      if (lease && lease.until > now) continue;
      this.leases.set(record.id, { owner: this.owner, until: now + leaseMs });
      taken.push(record);
    }
    return taken;
  }

  renew(ids: readonly string[], leaseMs = this.defaultLeaseMs): string[] {
    const until = this.clock.now() + leaseMs;
    const held: string[] = [];
    for (const id of new Set(ids)) {
      const lease = this.leases.get(id);
      if (lease?.owner !== this.owner) continue;
      lease.until = until;
      held.push(id);
    }
    return held;
  }

  release(ids: readonly string[]): void {
    for (const id of ids) if (this.holds(id)) this.leases.delete(id);
  }
}

/** Named locks within one process: the journal store has no other process to share them with. */
export class LocalLocks {
  private readonly held = new Map<string, AbortController>();

  tryLock(name: string): HeldLock | undefined {
    if (this.held.has(name)) return undefined;
    const controller = new AbortController();
    this.held.set(name, controller);
    return {
      name,
      signal: controller.signal,
      release: async () => {
        if (this.held.get(name) === controller) this.held.delete(name);
      },
    };
  }

  /** The store closes: whoever still holds a lock learns it is gone. */
  dropAll(): void {
    for (const c of this.held.values()) c.abort(new Error('the store was closed'));
    this.held.clear();
  }
}
