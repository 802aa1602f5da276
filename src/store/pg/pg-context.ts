import type pg from 'pg';
import type { Clock } from '../../clock.js';
import type { KeyedOrder } from './keyed-order.js';

/** What collections and key spaces share: the pool behind `query`, who we are, the clock. */
export interface PgContext {
  readonly owner: string;
  readonly clock: Clock;
  /** Lease a new live record starts with, and the default of claimStale/renew. */
  readonly leaseMs: number;
  /** Writes of one record or key, in call order. */
  readonly order: KeyedOrder;
  /** One statement, committed on its own when it resolves; a database that cannot take it rejects with Unavailable. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>>;
}
