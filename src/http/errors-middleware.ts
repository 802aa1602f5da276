import type { Context, Next } from 'koa';
import { AppError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';

export type ErrorReporter = (err: unknown, ctx: Context) => void;

/** How each domain error code is shown over HTTP. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  too_many_requests: 429,
  upstream_failed: 502,
  unavailable: 503,
};

/** The one place where an error becomes an HTTP answer: `{"error": {code, message, details}}`. */
export function renderErrors(logger: Logger, report: ErrorReporter) {
  return async function errorsMiddleware(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = { error: { code: 'not_found', message: `no route for ${ctx.method} ${ctx.path}` } };
      } else if (ctx.status === 405 && !ctx.body) {
        ctx.body = { error: { code: 'method_not_allowed', message: `${ctx.method} is not allowed on ${ctx.path}` } };
      }
    } catch (err) {
      if (err instanceof AppError) {
        const status = HTTP_STATUS[err.code];
        ctx.status = status;
        if (err.code === 'unauthorized') ctx.set('WWW-Authenticate', 'Bearer');
        if (err.retryAfterSec !== undefined) ctx.set('Retry-After', String(err.retryAfterSec));
        ctx.body = { error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } };
        // A 503 with Retry-After is back-pressure (a full queue), expected under load: the part that
        // refuses logs it, rate-limited; one error line per refused request would flood the log.
        if (status >= 500 && err.retryAfterSec === undefined) logger.error({ err, reqId: ctx.state.reqId }, err.message);
        return;
      }
      // koa/http-errors style (e.g. 405 from allowedMethods, aborted body reads)
      const status = typeof (err as { status?: unknown }).status === 'number' ? (err as { status: number }).status : 500;
      if (status < 500) {
        ctx.status = status;
        ctx.body = { error: { code: `http_${status}`, message: (err as Error).message } };
        return;
      }
      logger.error({ err, reqId: ctx.state.reqId }, 'unhandled error');
      report(err, ctx);
      ctx.status = 500;
      ctx.body = { error: { code: 'internal', message: 'internal error; see the service log', reqId: ctx.state.reqId } };
    }
  };
}
