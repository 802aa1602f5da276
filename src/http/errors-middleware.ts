import type { Context, Next } from 'koa';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';

export type ErrorReporter = (err: unknown, ctx: Context) => void;

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
        ctx.status = err.status;
        if (err.headers) ctx.set(err.headers);
        ctx.body = { error: { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) } };
        if (err.status >= 500) logger.error({ err, reqId: ctx.state.reqId }, err.message);
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
