import { createHmac } from 'node:crypto';
import { z } from 'zod';
import { backoffDelay } from '../backoff.js';
import type { Clock } from '../clock.js';
import { parseJsonOrUndefined } from '../json.js';
import { safeEqual } from '../safe-equal.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { ApprovalFlow, Stage, StageSpec } from './flow-schema.js';

/** lark-ticket's contract: what a business API answers, or later POSTs to the callback URL. */
export const businessResultSchema = z.object({
  ticket_id: z.string().optional(),
  result: z.boolean(),
  msg: z.string().optional().default(''),
  error: z.string().nullish(),
});
export type BusinessResult = z.infer<typeof businessResultSchema>;

export interface BusinessRequest {
  ticket_id: string;
  flow: string;
  stage: Stage;
  fields: Record<string, unknown>;
  applicant: { user_id?: string; open_id?: string };
  callback_url?: string;
  /** Async stages: this attempt's id (its Idempotency-Key). A callback that echoes it is refused once a Retry started a newer attempt. */
  attempt_id?: string;
}

export type BusinessOutcome =
  | { kind: 'result'; result: BusinessResult }
  | { kind: 'accepted' }
  | { kind: 'unreachable'; error: string; attempts: number };

export const SIGNATURE_HEADER = 'x-bridge-signature';
export const TIMESTAMP_HEADER = 'x-bridge-timestamp';
export const CALLBACK_WINDOW_SEC = 5 * 60;

/** Hex HMAC-SHA256 with the flow's secret over "<timestamp>.<raw body>". */
export function signBody(secret: string, timestamp: string, raw: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(raw).digest('hex');
}

/** Why a business callback's signature headers are refused, or undefined when they are fine. */
export function callbackTimestampProblem(timestamp: string | undefined, signature: string | undefined, nowMs: number): string | undefined {
  if (!timestamp || !signature) return `missing ${TIMESTAMP_HEADER} or ${SIGNATURE_HEADER}`;
  const ts = Number(timestamp);
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - ts) > CALLBACK_WINDOW_SEC) return 'callback timestamp is outside the 5 minute window';
  return undefined;
}

/** True when signature is the flow secret's HMAC of "<timestamp>.<raw body>" (constant time). */
export function bodySignatureMatches(secret: string, timestamp: string, signature: string, raw: Buffer): boolean {
  return safeEqual(signBody(secret, timestamp, raw), signature.toLowerCase());
}

/** What a stage's business call carries: the same for the engine and `npm run flows:try`. */
export function businessRequest(
  flow: ApprovalFlow,
  stage: Stage,
  ticket: { instanceCode: string; applicant: { userId?: string; openId?: string }; fields?: Record<string, unknown> },
  publicBaseUrl: string,
  attemptId: string,
): BusinessRequest {
  const async = flow[stage]?.mode === 'async';
  return {
    ticket_id: ticket.instanceCode,
    flow: flow.id,
    stage,
    fields: ticket.fields ?? {},
    applicant: { user_id: ticket.applicant.userId, open_id: ticket.applicant.openId },
    ...(async ? { callback_url: `${publicBaseUrl}/api/v1/lark/${stage}/callback`, attempt_id: attemptId } : {}),
  };
}

/** The Idempotency-Key of a stage's call: the same on every try, new for a Retry (its count is in it). */
export function businessIdempotencyKey(instanceCode: string, stage: Stage, taskId: string, retries: number): string {
  // A header is ASCII: a non-ASCII instance code is percent-encoded (Lark's usual codes are unchanged).
  return [instanceCode, stage, taskId, String(retries)].map(encodeURIComponent).join(':');
}

/** The headers that sign a business call's raw body at `nowMs`. */
export function signedHeaders(secret: string, raw: string, nowMs: number, idempotencyKey: string): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signBody(secret, timestamp, raw), 'idempotency-key': idempotencyKey };
}

/** Backoff between tries of one business call: equal jitter from 200 ms, doubling, capped at 5 s. */
export const BUSINESS_BACKOFF = { baseMs: 200, capMs: 5_000 } as const;

export interface BusinessCallDeps {
  upstream: UpstreamClient;
  clock: Clock;
  /** The jitter source (tests pin it). */
  random?: () => number;
}

/**
 * Calls a flow's business API for one stage. Timeouts, network errors, 5xx and malformed
 * answers are retried: `retries` counts the EXTRA tries (retries: 2 → at most 3 calls), with
 * backoff between them; what is left is "unreachable" and the run rejects. A 4xx is final. An
 * async stage only needs a 2xx: the result comes by callback.
 */
export async function callBusiness(
  { upstream, clock, random }: BusinessCallDeps,
  spec: StageSpec,
  secret: string,
  request: BusinessRequest,
  idempotencyKey: string,
): Promise<BusinessOutcome> {
  const raw = JSON.stringify(request);
  let lastError = '';
  const attempts = spec.retries + 1;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const outcome = await upstream.postJson(spec.url, raw, signedHeaders(secret, raw, clock.now(), idempotencyKey), spec.timeoutMs, 64 * 1024);
    if (outcome.kind === 'success') {
      if (spec.mode === 'async') return { kind: 'accepted' };
      const parsed = parseJsonOrUndefined(outcome.response);
      const result = businessResultSchema.safeParse(parsed);
      if (result.success) return { kind: 'result', result: result.data };
      lastError = `malformed answer (expected {result, msg}): ${outcome.response.slice(0, 200)}`;
    } else if (outcome.kind === 'timeout') {
      lastError = `no answer within ${spec.timeoutMs} ms`;
    } else {
      lastError = outcome.error;
      if (outcome.httpStatus !== undefined && outcome.httpStatus < 500 && outcome.httpStatus !== 429 && outcome.httpStatus !== 408) {
        return { kind: 'unreachable', error: `${lastError}${outcome.response ? `: ${outcome.response.slice(0, 200)}` : ''}`, attempts: attempt };
      }
    }
    if (attempt < attempts) await clock.sleep(backoffDelay(attempt, BUSINESS_BACKOFF.baseMs, BUSINESS_BACKOFF.capMs, random));
  }
  return { kind: 'unreachable', error: lastError, attempts };
}
