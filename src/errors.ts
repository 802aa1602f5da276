/**
 * Domain errors with a stable code. They say what went wrong, not how HTTP shows it: the error
 * middleware (src/http/errors-middleware.ts) is the one place that maps a code to a status.
 */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'too_many_requests'
  | 'upstream_failed'
  | 'unavailable';

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** Seconds a client should wait before trying again (busy, unavailable). */
    readonly retryAfterSec?: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The input cannot be used as sent. */
export class InvalidInput extends AppError {
  constructor(message: string, details?: unknown) {
    super('bad_request', message, details);
  }
}

/** The caller did not prove who it is (token, signature, HMAC). */
export class NotAuthenticated extends AppError {
  constructor(message: string) {
    super('unauthorized', message);
  }
}

export class NotFound extends AppError {
  constructor(message: string) {
    super('not_found', message);
  }
}

/** The thing exists but is not in a state that allows this. */
export class Conflict extends AppError {
  constructor(message: string, details?: unknown) {
    super('conflict', message, details);
  }
}

export class TooLarge extends AppError {
  constructor(message: string, details?: unknown) {
    super('payload_too_large', message, details);
  }
}

export class UnsupportedMediaType extends AppError {
  constructor(message: string) {
    super('unsupported_media_type', message);
  }
}

/** Too much work queued for this client or in all: try again later. */
export class Busy extends AppError {
  constructor(message: string, retryAfterSec: number, details?: unknown) {
    super('too_many_requests', message, details, retryAfterSec);
  }
}

/** A system we depend on (Lark, an upstream) refused or failed. */
export class UpstreamFailed extends AppError {
  constructor(message: string, details?: unknown) {
    super('upstream_failed', message, details);
  }
}

/** We cannot do it now (disk, configuration): nothing was done. */
export class Unavailable extends AppError {
  constructor(message: string, retryAfterSec?: number) {
    super('unavailable', message, undefined, retryAfterSec);
  }
}
