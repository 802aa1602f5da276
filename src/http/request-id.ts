import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import { accessLogger, type Logger } from '../log.js';
import { requestContext, type RequestContext } from '../request-context.js';

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Gives every request an id (the caller's X-Request-Id when sane: nginx sets one), echoes it,
 * runs the rest of the request in its context (every log line and error report made meanwhile
 * carries the id), and writes one access log line: method, path (never the query string, which
 * may hold a token), status, ms, request id, client (a token's digest label, never the token)
 * and the client address (X-Forwarded-For as nginx sets it).
 */
export function requestIds(logger: Logger) {
  const access = accessLogger(logger);
  return async function requestIdMiddleware(ctx: Context, next: Next): Promise<void> {
    const given = ctx.get('x-request-id');
    const reqId = SAFE_ID.test(given) ? given : randomUUID();
    ctx.state.reqId = reqId;
    ctx.set('X-Request-Id', reqId);
    // Plain values only: work the request starts keeps this context (see setRequestClient).
    const context: RequestContext = { reqId, method: ctx.method, path: ctx.path };
    const started = performance.now();
    try {
      await requestContext.run(context, next);
    } finally {
      const client = context.client;
      if (access.isLevelEnabled('info')) {
        access.info(
          { reqId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(performance.now() - started), ...(client ? { client } : {}), ip: ctx.ip },
          'request',
        );
      }
    }
  };
}
