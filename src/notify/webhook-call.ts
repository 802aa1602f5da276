import { parseJsonOrUndefined } from '../json.js';
import type { UpstreamClient } from '../upstream/client.js';
import { describeWebhook, NotifyError } from './notifier.js';

const TIMEOUT_MS = 10_000;

/**
 * POSTs a robot message through the upstream client and answers the parsed JSON answer; throws
 * a NotifyError naming the webhook without its key. HTTP 5xx, 429 and no answer are retryable.
 */
export async function postToWebhook(upstream: UpstreamClient, url: string, body: unknown): Promise<Record<string, unknown>> {
  const where = describeWebhook(url);
  const outcome = await upstream.postJson(url, body, {}, TIMEOUT_MS, 64 * 1024, AbortSignal.timeout(TIMEOUT_MS));
  if (outcome.kind === 'timeout') throw new NotifyError(`${where}: ${outcome.error}`, true);
  if (outcome.kind === 'failure') {
    const detail = outcome.response ? `: ${outcome.response.slice(0, 200)}` : '';
    throw new NotifyError(`${where}: ${outcome.error}${detail}`, outcome.retryable);
  }
  const json = parseJsonOrUndefined(outcome.response);
  if (!json || typeof json !== 'object') throw new NotifyError(`${where}: the answer is not a JSON object: ${outcome.response.slice(0, 120)}`, false);
  return json as Record<string, unknown>;
}
