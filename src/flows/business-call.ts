import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { backoffDelay } from '../backoff.js';
import type { Clock } from '../clock.js';
import { Unauthorized } from '../errors.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { Stage, StageSpec } from './flow-schema.js';

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

export function verifyBodySignature(secret: string, timestamp: string | undefined, signature: string | undefined, raw: Buffer, nowMs: number): void {
  if (!timestamp || !signature) throw new Unauthorized(`missing ${TIMESTAMP_HEADER} or ${SIGNATURE_HEADER}`);
  const ts = Number(timestamp);
  if (!Number.isInteger(ts) || Math.abs(nowMs / 1000 - ts) > CALLBACK_WINDOW_SEC) throw new Unauthorized('callback timestamp is outside the 5 minute window');
  const expected = Buffer.from(signBody(secret, timestamp, raw), 'hex');
  const given = Buffer.from(signature, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Unauthorized('callback signature does not verify');
}

/**
 * Calls a flow's business API for one stage. Timeouts, network errors, 5xx and malformed
 * answers are retried (`retries`, with backoff); what is left is "unreachable" and the run
 * rejects. A 4xx is final. An async stage only needs a 2xx: the result comes by callback.
 */
export async function callBusiness(
  upstream: UpstreamClient,
  clock: Clock,
  spec: StageSpec,
  secret: string,
  request: BusinessRequest,
  idempotencyKey: string,
): Promise<BusinessOutcome> {
  const raw = JSON.stringify(request);
  let lastError = '';
  const attempts = spec.retries + 1;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const timestamp = String(Math.floor(clock.now() / 1000));
    const outcome = await upstream.postJson(
      spec.url,
      raw,
      { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signBody(secret, timestamp, raw), 'idempotency-key': idempotencyKey },
      spec.timeoutMs,
      64 * 1024,
    );
    if (outcome.kind === 'success') {
      if (spec.mode === 'async') return { kind: 'accepted' };
      const parsed = safeJson(outcome.response);
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
    if (attempt < attempts) await clock.sleep(backoffDelay(attempt, 200, 5_000));
  }
  return { kind: 'unreachable', error: lastError, attempts };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
