import type { Clock } from '../clock.js';
import { backoffDelay } from '../backoff.js';
import type { Logger } from '../log.js';
import { noMetrics, type Metrics } from '../metrics/metrics.js';
import { classifyLarkFailure, isTokenRefused } from './lark-error.js';
import type { LarkRateLimiter } from './rate-limiter.js';

/** Runs one Open API call: `what` names the API (it picks the rate limits), `key` the chat or message it targets. */
export type LarkCall = <T>(what: string, key: string, call: () => Promise<T>) => Promise<T>;

export interface LarkCallOptions {
  limiter: LarkRateLimiter;
  clock: Clock;
  logger: Logger;
  /** Tries in all, the first included. */
  attempts?: number;
  retryBaseMs?: number;
  /** Drops the cached tenant token, so that the next call fetches a new one. */
  renewToken?: () => Promise<void>;
  /** Jitter source of the backoff (tests pin it). */
  random?: () => number;
  /** Counts each attempt by API and Lark code. */
  metrics?: Metrics;
}

/**
 * Runs an Open API call through the rate limiter and retries what is retryable (rate limits,
 * 5xx, no answer) after a backoff, honouring Lark's x-ogw-ratelimit-reset. A refused tenant
 * token is renewed once and the call tried again at once. Anything else is thrown as a
 * LarkApiError straight away.
 */
export function createLarkCall(o: LarkCallOptions): LarkCall {
  const attempts = o.attempts ?? 4;
  const retryBaseMs = o.retryBaseMs ?? 500;
  const metrics = o.metrics ?? noMetrics;
  return async function larkCall<T>(what: string, key: string, call: () => Promise<T>): Promise<T> {
    // Each attempt is counted with Lark's code; the time is the call's, not the rate limiter's wait.
    const counted = async () => {
      const started = performance.now();
      try {
        const result = await call();
        metrics.larkCall(what, 0, (performance.now() - started) / 1000);
        return result;
      } catch (err) {
        metrics.larkCall(what, classifyLarkFailure(err).code, (performance.now() - started) / 1000);
        throw err;
      }
    };
    let renewed = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await o.limiter.schedule(what, key, counted);
      } catch (err) {
        const failure = classifyLarkFailure(err);
        if (isTokenRefused(failure) && o.renewToken && !renewed) {
          renewed = true;
          o.logger.warn({ what, code: failure.code }, 'Lark refused the tenant token; fetching a new one');
          await o.renewToken();
          attempt--; // a renewed token is not a retry of a failed call
          continue;
        }
        if (!failure.retryable || attempt >= attempts) throw failure;
        const wait = failure.retryAfterSec !== undefined ? Math.min(failure.retryAfterSec * 1000, 60_000) : backoffDelay(attempt, retryBaseMs, undefined, o.random);
        o.logger.warn({ what, code: failure.code, attempt, wait }, 'Lark call failed, retrying');
        await o.clock.sleep(wait);
      }
    }
  };
}
