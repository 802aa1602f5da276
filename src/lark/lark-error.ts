/** A failed Open API call, classified once here: retry it, or give up and report it. */
export class LarkApiError extends Error {
  constructor(
    readonly code: number,
    readonly larkMsg: string,
    readonly httpStatus: number | undefined,
    readonly retryable: boolean,
    /** Seconds Lark asked us to wait (x-ogw-ratelimit-reset), when it said. */
    readonly retryAfterSec?: number,
    /** Lark was never reached: its domain did not resolve (dns), or no connection (network). */
    readonly unreachable?: 'dns' | 'network',
  ) {
    super(`Lark API error ${code}: ${larkMsg}${httpStatus ? ` (HTTP ${httpStatus})` : ''}`);
    this.name = 'LarkApiError';
  }
}

// https://open.feishu.cn/document/server-docs/api-call-guide/generic-error-code
const RATE_LIMITED = 99991400;
// Rate limits and internal errors Lark documents as transient ("please retry"). 99991672 (the app
// lacks a scope) is not among them: retrying cannot grant a scope.
const TRANSIENT_CODES = new Set([RATE_LIMITED, 1254290, 230020]);
// The tenant access token was refused (99991661: missing or malformed, 99991663: invalid or
// expired): fetching a new one may fix it, waiting does not.
const TOKEN_REFUSED = new Set([99991661, 99991663]);

/** True when Lark refused the tenant token itself: get a new token and try once more. */
export function isTokenRefused(err: LarkApiError): boolean {
  return TOKEN_REFUSED.has(err.code);
}

interface AxiosLikeError {
  response?: { status?: number; data?: unknown; headers?: Record<string, unknown> };
  code?: string;
  message?: string;
  hostname?: string;
  cause?: { hostname?: string };
}

// getaddrinfo failures as Node names them: the name does not resolve (or not now).
const DNS_FAILURES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);

/** Turns whatever the SDK threw (an axios error, a network error) into a LarkApiError. */
export function classifyLarkFailure(err: unknown): LarkApiError {
  if (err instanceof LarkApiError) return err;
  const e = err as AxiosLikeError;
  const status = e.response?.status;
  const data = e.response?.data as { code?: number; msg?: string } | undefined;
  if (status !== undefined) {
    const code = typeof data?.code === 'number' ? data.code : -status;
    const msg = typeof data?.msg === 'string' ? data.msg : `HTTP ${status}`;
    const reset = Number(e.response?.headers?.['x-ogw-ratelimit-reset']);
    const retryable = status >= 500 || status === 429 || TRANSIENT_CODES.has(code);
    return new LarkApiError(code, msg, status, retryable, Number.isFinite(reset) ? reset : undefined);
  }
  // No answer at all: no such name, connection refused, reset, timeout. Safe to retry with a uuid-deduped send.
  if (e.code && DNS_FAILURES.has(e.code)) {
    const host = e.hostname ?? e.cause?.hostname ?? /getaddrinfo \S+ (\S+)/.exec(e.message ?? '')?.[1] ?? 'the Lark domain';
    return new LarkApiError(-1, `cannot resolve ${host} (${e.code}): check LARK_DOMAIN and this host's DNS`, undefined, true, undefined, 'dns');
  }
  return new LarkApiError(-1, `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`, undefined, true, undefined, 'network');
}

/** An HTTP 200 answer can still carry a non-zero code: that is a failure too. */
export function assertLarkOk<T extends { code?: number; msg?: string }>(answer: T): T {
  if (answer && typeof answer.code === 'number' && answer.code !== 0) {
    throw new LarkApiError(answer.code, answer.msg ?? '', 200, TRANSIENT_CODES.has(answer.code));
  }
  return answer;
}
