import type { UpstreamClient, UpstreamOutcome } from '../upstream/client.js';
import type { Metrics, UpstreamPurpose, UpstreamResult } from './metrics.js';

/** The upstream client with every call timed and counted under `purpose`; close() is the client's own. */
export function observedUpstream(client: UpstreamClient, metrics: Metrics, purpose: UpstreamPurpose): UpstreamClient {
  const timed = async (call: () => Promise<UpstreamOutcome>): Promise<UpstreamOutcome> => {
    const started = performance.now();
    const outcome = await call();
    metrics.upstreamCall(purpose, resultOf(outcome), (performance.now() - started) / 1000);
    return outcome;
  };
  return {
    postJson: (url, body, headers, deadlineMs, keepBytes, signal) => timed(() => client.postJson(url, body, headers, deadlineMs, keepBytes, signal)),
    get: (url, headers, deadlineMs, keepBytes, signal) => timed(() => client.get(url, headers, deadlineMs, keepBytes, signal)),
    close: (graceMs) => client.close(graceMs),
  };
}

export function resultOf(outcome: UpstreamOutcome): UpstreamResult {
  if (outcome.kind === 'success') return 'success';
  if (outcome.kind === 'timeout') return 'timeout';
  if (outcome.cancelled) return 'cancelled';
  if (outcome.httpStatus === undefined) return 'error';
  return outcome.httpStatus >= 500 ? 'http_5xx' : 'http_4xx';
}
