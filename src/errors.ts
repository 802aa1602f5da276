/** Errors with a stable code and HTTP status; the error middleware is the only place that renders them. */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequest extends AppError {
  constructor(message: string, details?: unknown) {
    super('bad_request', 400, message, details);
  }
}

export class Unauthorized extends AppError {
  constructor(message: string) {
    super('unauthorized', 401, message, undefined, { 'WWW-Authenticate': 'Bearer' });
  }
}

export class NotFound extends AppError {
  constructor(message: string) {
    super('not_found', 404, message);
  }
}

export class Conflict extends AppError {
  constructor(message: string, details?: unknown) {
    super('conflict', 409, message, details);
  }
}

export class PayloadTooLarge extends AppError {
  constructor(limitBytes: number) {
    super('payload_too_large', 413, `request body exceeds ${limitBytes} bytes`);
  }
}

export class UnsupportedMediaType extends AppError {
  constructor(message: string) {
    super('unsupported_media_type', 415, message);
  }
}

export class UpstreamFailed extends AppError {
  constructor(message: string, details?: unknown) {
    super('upstream_failed', 502, message, details);
  }
}

export class ServiceUnavailable extends AppError {
  constructor(message: string) {
    super('unavailable', 503, message);
  }
}
