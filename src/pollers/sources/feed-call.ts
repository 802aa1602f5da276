import type { UpstreamClient } from '../../upstream/client.js';
import { parseJsonOrUndefined } from '../../json.js';
import { FeedError } from '../feed.js';

export interface FeedCall {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: unknown;
  timeoutMs: number;
  /** The whole answer is needed (it is parsed): larger answers are refused, not cut. */
  maxBytes: number;
  signal?: AbortSignal;
}

/** "https://host/path" of a URL: never its query (it may carry a key) in messages and logs. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * One call to a feed, through the upstream client, with a deadline over the whole exchange.
 * Answers the parsed JSON, or throws a FeedError that says what went wrong: HTTP status (with a
 * short excerpt of the answer), timeout, network error, an answer too large or not JSON.
 */
export async function callFeed(upstream: UpstreamClient, call: FeedCall): Promise<unknown> {
  const what = `${call.method} ${describeUrl(call.url)}`;
  // timeoutMs is the upstream client's deadline over the whole exchange (a trickling feed too).
  const outcome =
    call.method === 'GET'
      ? await upstream.get(call.url, call.headers, call.timeoutMs, call.maxBytes, call.signal)
      : await upstream.postJson(call.url, call.body ?? {}, call.headers, call.timeoutMs, call.maxBytes, call.signal);
  if (outcome.kind === 'timeout') throw new FeedError(`${what}: ${outcome.error}`, true);
  if (outcome.kind === 'failure') {
    const excerpt = outcome.response ? `: ${oneLine(outcome.response, 200)}` : '';
    throw new FeedError(`${what}: ${outcome.error}${excerpt}`, outcome.retryable);
  }
  if (outcome.truncated) throw new FeedError(`${what}: the answer is larger than ${call.maxBytes} bytes`, false);
  const json = parseJsonOrUndefined(outcome.response);
  if (json === undefined) throw new FeedError(`${what}: the answer is not valid JSON: ${oneLine(outcome.response, 120)}`, false);
  return json;
}

export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** A zod problem as "content.3.createAt: expected number" for a FeedError. */
export function shapeProblem(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>): string {
  const first = issues[0];
  if (!first) return 'unexpected shape';
  const path = first.path.map(String).join('.') || '(answer)';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${path}: ${first.message}${more}`;
}
