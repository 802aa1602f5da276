import type { Clock } from '../clock.js';
import { backoffDelay } from '../backoff.js';
import type { Logger } from '../log.js';
import { classifyLarkFailure } from './lark-error.js';
import type { LarkRateLimiter } from './rate-limiter.js';

export type LarkCall = <T>(what: string, key: string, call: () => Promise<T>) => Promise<T>;

export interface LarkCallOptions {
  limiter: LarkRateLimiter;
  clock: Clock;
  logger: Logger;
  attempts?: number;
  retryBaseMs?: number;
}

/**
 * Runs an Open API call through the rate limiter and retries what is retryable (rate limits,
 * 5xx, no answer), honouring Lark's x-ogw-ratelimit-reset. Anything else is thrown as a
 * LarkApiError at once.
 */
export function createLarkCall(o: LarkCallOptions): LarkCall {
  const attempts = o.attempts ?? 4;
  const retryBaseMs = o.retryBaseMs ?? 500;
  return async function larkCall<T>(what: string, key: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await o.limiter.schedule(key, call);
      } catch (err) {
        const failure = classifyLarkFailure(err);
        if (!failure.retryable || attempt >= attempts) throw failure;
        const wait = failure.retryAfterSec !== undefined ? Math.min(failure.retryAfterSec * 1000, 60_000) : backoffDelay(attempt, retryBaseMs);
        o.logger.warn({ what, code: failure.code, attempt, wait }, 'Lark call failed, retrying');
        await o.clock.sleep(wait);
      }
    }
  };
}
