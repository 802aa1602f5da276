import { readFileSync } from 'node:fs';
import { Agent, request, type Dispatcher } from 'undici';

/** The one module that calls upstream URLs (Anycross triggers, business APIs) over undici. */
export type UpstreamOutcome =
  /** `truncated`: the answer was longer than the bytes kept (`response` then ends with "…(N bytes)"). */
  | { kind: 'success'; httpStatus: number; response: string; durationMs: number; truncated?: true }
  | {
      kind: 'failure';
      retryable: boolean;
      httpStatus?: number;
      response?: string;
      error: string;
      durationMs: number;
      /** The caller's signal ended the call (the service is stopping): it proves nothing about the upstream. */
      cancelled?: true;
    }
  /** The request was sent but no complete answer came before the deadline: the upstream has it. */
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
   * POSTs JSON (an object, or text already serialised — e.g. when it was signed). `deadlineMs`
   * bounds the whole exchange: connecting, sending, the headers and the body of the answer.
   * `signal` lets the caller cancel (a stop); the outcome is then a cancelled failure.
   */
  postJson(
    url: string,
    body: unknown,
    headers: Record<string, string>,
    deadlineMs: number,
    keepBytes?: number,
    signal?: AbortSignal,
  ): Promise<UpstreamOutcome>;
  /** GETs a URL (feeds): as postJson, without a body. */
  get(url: string, headers: Record<string, string>, deadlineMs: number, keepBytes?: number, signal?: AbortSignal): Promise<UpstreamOutcome>;
  /** Waits up to `graceMs` for calls in flight, then cuts them. */
  close(graceMs?: number): Promise<void>;
}

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
    // The deadline below is the one timer of a call; undici's own ones measure gaps, not the whole.
    headersTimeout: 0,
    bodyTimeout: 0,
  });

  const inFlight = new Set<Promise<UpstreamOutcome>>();
  const closing = new AbortController();

  async function send(
    method: 'GET' | 'POST',
    url: string,
    body: string | undefined,
    headers: Record<string, string>,
    deadlineMs: number,
    keep: number,
    signal?: AbortSignal,
  ): Promise<UpstreamOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    // One controller per call, aborted by its deadline or by a stop. Not AbortSignal.any: on
    // Node 20 it keeps every derived signal alive as long as the long-lived stop signal lives.
    const abort = new AbortController();
    let cause: 'deadline' | 'stop' | undefined;
    const timer = setTimeout(() => {
      cause ??= 'deadline';
      abort.abort(new Error(`deadline of ${deadlineMs} ms reached`));
    }, deadlineMs);
    const onStop = () => {
      cause ??= 'stop';
      abort.abort(new Error('the service is stopping'));
    };
    const stopSignals = signal ? [signal, closing.signal] : [closing.signal];
    for (const s of stopSignals) {
      if (s.aborted) onStop();
      else s.addEventListener('abort', onStop, { once: true });
    }
    let sent = false;
    try {
      const call = request(url, {
        method,
        dispatcher: agent.compose(onceWritten(() => (sent = true))),
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), 'user-agent': 'lark-bridge', ...headers },
        body,
        signal: abort.signal,
      });
      call.catch(() => undefined); // when the race below is lost, its rejection is expected
      // undici applies an abort to a request still connecting only once it has a socket: do not wait for that.
      const res = await Promise.race([call, rejectOnAbort(abort.signal)]);
      const { text: response, truncated } = await readCapped(res.body, keep);
      const httpStatus = res.statusCode;
      if (httpStatus >= 200 && httpStatus < 300) return { kind: 'success', httpStatus, response, durationMs: elapsed(), ...(truncated ? { truncated } : {}) };
      const retryable = httpStatus >= 500 || httpStatus === 429 || httpStatus === 408;
      return { kind: 'failure', retryable, httpStatus, response, error: `upstream answered HTTP ${httpStatus}`, durationMs: elapsed() };
    } catch (err) {
      if (cause === 'stop') {
        return { kind: 'failure', retryable: true, cancelled: true, error: 'cancelled: the service is stopping', durationMs: elapsed() };
      }
      if (cause === 'deadline') {
        // Sent: the upstream has the request, only its answer is missing. Not sent: it has nothing.
        if (sent) return { kind: 'timeout', error: `no complete answer within ${deadlineMs} ms`, durationMs: elapsed() };
        return { kind: 'failure', retryable: true, error: `could not connect and send within ${deadlineMs} ms`, durationMs: elapsed() };
      }
      const code = (err as { code?: string }).code ?? '';
      const message = `${code ? `${code}: ` : ''}${(err as Error).message}`;
      return { kind: 'failure', retryable: RETRYABLE_CODES.has(code), error: message, durationMs: elapsed() };
    } finally {
      clearTimeout(timer);
      for (const s of stopSignals) s.removeEventListener('abort', onStop);
    }
  }

  function track(outcome: Promise<UpstreamOutcome>): Promise<UpstreamOutcome> {
    inFlight.add(outcome);
    void outcome.finally(() => inFlight.delete(outcome));
    return outcome;
  }

  return {
    postJson: (url, body, headers, deadlineMs, keep = keepBytes, signal) =>
      track(send('POST', url, typeof body === 'string' ? body : JSON.stringify(body), headers, deadlineMs, keep, signal)),
    get: (url, headers, deadlineMs, keep = keepBytes, signal) => track(send('GET', url, undefined, headers, deadlineMs, keep, signal)),
    async close(graceMs = 1_000) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(inFlight), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
      closing.abort();
      await Promise.all(inFlight);
      // agent.close() would wait for sockets still connecting; nothing of ours waits on them any more.
      await agent.destroy();
    },
  };
}

/** Rejects when the signal aborts; never resolves. */
function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/**
 * Tells when undici starts writing the request on a connected socket (its onRequestStart), so
 * a deadline that strikes later means "sent, answer missing" and one that strikes before means
 * "never sent".
 */
function onceWritten(notify: () => void): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (opts, handler) =>
    dispatch(opts, {
      onRequestStart(controller, context) {
        notify();
        handler.onRequestStart?.(controller, context);
      },
      onRequestUpgrade: (controller, statusCode, headers, socket) => handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStart: (controller, statusCode, headers, statusMessage) => handler.onResponseStart?.(controller, statusCode, headers, statusMessage),
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    });
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
