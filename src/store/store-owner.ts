import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Default lease on a live record: long enough to outlast a slow upstream call between renewals, short enough that a dead replica's work is taken over soon. */
export const DEFAULT_LEASE_MS = 30_000;

/** A fresh owner id for an open store: host and pid say which replica it is (pg_stat_activity, logs); the random part keeps a restarted process apart from its previous life. */
export function newStoreOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}
