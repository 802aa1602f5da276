import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

/** The one module that calls upstream URLs (Anycross triggers, business APIs) over undici. */
export type UpstreamOutcome =
  /** `truncated`: the answer was longer than the bytes kept (`response` then ends with "…(N bytes)"). */
  | { kind: 'success'; httpStatus: number; response: string; durationMs: number; truncated?: true }
  | { kind: 'failure'; retryable: boolean; httpStatus?: number; response?: string; error: string; durationMs: number }
  /** The request went out but no answer came within the read timeout: the upstream has it. */
  | { kind: 'timeout'; error: string; durationMs: number };

export interface UpstreamOptions {
  connectTimeoutMs: number;
  verifySsl: boolean;
  caBundlePath?: string;
  /** How much of an answer to keep in the job record. */
  keepBytes?: number;
}

export interface UpstreamClient {
  /**
   * POSTs JSON (an object, or text already serialised — e.g. when it was signed). An aborted
   * `signal` ends the call: a timeout when its reason is a TimeoutError (AbortSignal.timeout).
   */
  postJson(url: string, body: unknown, headers: Record<string, string>, readTimeoutMs: number, keepBytes?: number, signal?: AbortSignal): Promise<UpstreamOutcome>;
  /** GETs a URL (feeds): as postJson, without a body. */
  get(url: string, headers: Record<string, string>, readTimeoutMs: number, keepBytes?: number, signal?: AbortSignal): Promise<UpstreamOutcome>;
  close(): Promise<void>;
}

// A runaway answer is not read past this, or past keepBytes when a caller keeps more (a feed).
const MAX_READ_BYTES = 1024 * 1024;

const RETRYABLE_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
]);

export function createUpstreamClient(options: UpstreamOptions): UpstreamClient {
  const keepBytes = options.keepBytes ?? 2048;
  const agent = new Agent({
    connect: {
      timeout: options.connectTimeoutMs,
      rejectUnauthorized: options.verifySsl,
      ...(options.caBundlePath ? { ca: readFileSync(options.caBundlePath, 'utf8') } : {}),
    },
    keepAliveTimeout: 4_000,
  });

  async function send(method: 'GET' | 'POST', url: string, body: string | undefined, headers: Record<string, string>, readTimeoutMs: number, keep: number, signal?: AbortSignal): Promise<UpstreamOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const res = await request(url, {
        method,
        dispatcher: agent,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), 'user-agent': 'lark-bridge', ...headers },
        body,
        headersTimeout: readTimeoutMs,
        bodyTimeout: readTimeoutMs,
        signal,
      });
      const { text: response, truncated } = await readCapped(res.body, keep);
      const httpStatus = res.statusCode;
      if (httpStatus >= 200 && httpStatus < 300) return { kind: 'success', httpStatus, response, durationMs: elapsed(), ...(truncated ? { truncated } : {}) };
      const retryable = httpStatus >= 500 || httpStatus === 429 || httpStatus === 408;
      return { kind: 'failure', retryable, httpStatus, response, error: `upstream answered HTTP ${httpStatus}`, durationMs: elapsed() };
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
        return { kind: 'timeout', error: `no answer within ${readTimeoutMs} ms`, durationMs: elapsed() };
      }
      if (signal?.aborted) {
        // A deadline over the whole exchange (a feed that trickles bytes never trips bodyTimeout).
        const reason = signal.reason as { name?: string } | undefined;
        if (reason?.name === 'TimeoutError') return { kind: 'timeout', error: 'no complete answer before the deadline', durationMs: elapsed() };
        return { kind: 'failure', retryable: true, error: 'cancelled', durationMs: elapsed() };
      }
      const message = `${code ? `${code}: ` : ''}${(err as Error).message}`;
      return { kind: 'failure', retryable: RETRYABLE_CODES.has(code), error: message, durationMs: elapsed() };
    }
  }

  return {
    postJson: (url, body, headers, readTimeoutMs, keep = keepBytes, signal) =>
      send('POST', url, typeof body === 'string' ? body : JSON.stringify(body), headers, readTimeoutMs, keep, signal),
    get: (url, headers, readTimeoutMs, keep = keepBytes, signal) => send('GET', url, undefined, headers, readTimeoutMs, keep, signal),
    close: () => agent.close(),
  };
}

/** Reads the whole body (so the connection can be reused) but keeps only the first `keep` bytes. */
async function readCapped(body: AsyncIterable<Buffer>, keep: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let kept = 0;
  let total = 0;
  const readLimit = Math.max(MAX_READ_BYTES, keep);
  for await (const chunk of body) {
    total += chunk.length;
    if (total > readLimit) break; // leaving the loop destroys the stream; stop reading a runaway answer
    if (kept < keep) {
      const part = chunk.subarray(0, keep - kept);
      chunks.push(part);
      kept += part.length;
    }
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return total > kept ? { text: `${text}…(${total} bytes)`, truncated: true } : { text, truncated: false };
}
