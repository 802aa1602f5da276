import type pg from 'pg';
import { Unavailable } from '../../errors.js';
import type { HeldLock } from '../store.js';
import { advisoryKey } from './advisory-key.js';
import { asStoreError } from './pg-errors.js';

interface Entry {
  key: string;
  controller: AbortController;
}

/**
 * Named locks as PostgreSQL session advisory locks, all on one dedicated connection of this
 * process: the server releases them when that connection ends, so a replica that dies (or loses
 * the database) holds nothing. The same session may take an advisory lock twice, so this
 * process also keeps its own list: a name is held once here, whoever asks.
 */
export class AdvisoryLocks {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  private readonly held = new Map<string, Entry | 'pending'>();
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly newClient: () => pg.Client,
    heartbeatMs: number,
    private readonly warn: (message: string) => void,
  ) {
    // An idle connection can die unnoticed (a restarted server): probe it while it holds locks.
    this.heartbeat = setInterval(() => this.probe(), heartbeatMs);
    this.heartbeat.unref();
  }

  async tryLock(name: string): Promise<HeldLock | undefined> {
    if (this.closed) throw new Unavailable('the store is closed');
    if (this.held.has(name)) return undefined;
    this.held.set(name, 'pending');
    try {
      const client = await this.connection();
      const key = advisoryKey(name);
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
      // Lost while asking: the server dropped whatever it granted with the connection.
      if (this.client !== client) throw new Unavailable('the database connection holding named locks dropped: try again shortly', 5);
      if (!rows[0]?.ok) {
        this.held.delete(name);
        return undefined;
      }
      const entry: Entry = { key, controller: new AbortController() };
      this.held.set(name, entry);
      return {
        name,
        signal: entry.controller.signal,
        release: async () => {
          if (this.held.get(name) !== entry) return;
          this.held.delete(name);
          if (this.client !== client) return; // its connection is gone, and the lock with it
          try {
            await client.query('SELECT pg_advisory_unlock($1)', [key]);
          } catch (err) {
            // Not sure the server let it go: dropping the connection is what surely does.
            this.lose(client, err as Error);
          }
        },
      };
    } catch (err) {
      if (this.held.get(name) === 'pending') this.held.delete(name);
      throw asStoreError(err);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    const client = this.client;
    if (client) this.lose(client, new Error('the store was closed'), false);
    else this.abortAll(new Error('the store was closed'));
    await this.connecting?.then((c) => c.end()).catch(() => undefined);
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<pg.Client> {
    const client = this.newClient();
    client.on('error', (err) => this.lose(client, err));
    client.on('end', () => this.lose(client, new Error('the connection ended')));
    try {
      await client.connect();
      // A replica whose host vanishes (no FIN) must not keep its locks for the OS default of two
      // hours: have the server probe this connection (about 25 s to notice).
      await client.query('SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3').catch(() => undefined);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      throw new Unavailable('the store is closed');
    }
    this.client = client;
    return client;
  }

  private probe(): void {
    const client = this.client;
    if (!client || ![...this.held.values()].some((e) => e !== 'pending')) return;
    client.query('SELECT 1').catch((err: Error) => this.lose(client, err));
  }

  /** The connection is gone (or must go): every lock on it is released by the server, tell their holders. */
  private lose(client: pg.Client, reason: Error, warn = true): void {
    if (this.client !== client) return;
    this.client = undefined;
    const count = this.abortAll(new Error(`the lock was lost: ${reason.message}`));
    if (warn && count) this.warn(`the database connection holding ${count} named lock(s) dropped (${reason.message}): they are released, the work they guarded must stop`);
    client.end().catch(() => undefined);
  }

  private abortAll(reason: Error): number {
    let count = 0;
    for (const [name, entry] of this.held) {
      if (entry === 'pending') continue;
      this.held.delete(name);
      entry.controller.abort(reason);
      count++;
    }
    return count;
  }
}
