import { Unavailable } from '../../errors.js';

// Node socket errors: the server cannot be reached or the connection broke.
const SOCKET_CODES = new Map([
  ['ECONNREFUSED', 'connection refused'],
  ['ECONNRESET', 'connection reset'],
  ['ETIMEDOUT', 'connection timed out'],
  ['EHOSTUNREACH', 'host unreachable'],
  ['ENETUNREACH', 'network unreachable'],
  ['ENOTFOUND', 'host name not found'],
  ['EAI_AGAIN', 'host name lookup failed'],
  ['EPIPE', 'connection broken'],
  ['ECONNABORTED', 'connection aborted'],
]);

// What node-pg says when a connection breaks or never comes (no SQLSTATE, no socket code).
const CLIENT_MESSAGES = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|is not queryable|Connection ended|Client was closed/i;

/**
 * Why the database cannot take work now, or undefined when `err` is not about availability (a
 * bug: a wrong statement, a constraint we did not expect). SQLSTATE classes:
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function unavailableReason(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    const socket = SOCKET_CODES.get(code);
    if (socket) return socket;
    if (code === '57014') return 'a statement ran past DATABASE_STATEMENT_TIMEOUT_MS';
    if (code === '57P01' || code === '57P02') return 'the server is shutting down';
    if (code === '57P03') return 'the server is starting up or shutting down';
    if (code === '25006') return 'the database is read-only (a standby, or default_transaction_read_only)';
    // 08 connection exception, 53 insufficient resources, 57 operator intervention,
    // 58 system error (I/O), 40 transaction rollback (deadlock, serialization), 28 authorization.
    if (/^(08|53|57|58|40|28)/.test(code) && code.length === 5) return err.message;
  }
  if (CLIENT_MESSAGES.test(err.message)) return err.message;
  return undefined;
}

/** A database error as the rest of the code should see it: Unavailable (503) when the database cannot take work now. */
export function asStoreError(err: unknown): unknown {
  const reason = unavailableReason(err);
  return reason ? new Unavailable(`the database is unavailable (${reason}): try again shortly`, 5) : err;
}
