import { pino, type Logger, type LoggerOptions } from 'pino';
import { requestContext } from './request-context.js';
import { SecretScrubber } from './secret-scrubber.js';

export type { Logger };

// Paths that carry credentials; pino replaces them before anything is written. The scrubber
// (secret-scrubber.ts) is the second net, for secret values inside messages and URLs.
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'headers["x-lark-signature"]',
  'authorization',
  'appSecret',
  'app_secret',
  'secret',
  'token',
  'apiKey',
  'encryptKey',
  'verificationToken',
  'password',
  'webhook',
  '*.authorization',
  '*.app_secret',
  '*.appSecret',
  '*.secret',
  '*.token',
  '*.apiKey',
  '*.encryptKey',
  '*.verificationToken',
  '*.webhook',
  '*.headers.authorization',
  'err.config.headers.Authorization',
  'err.config.headers.authorization',
];

/** An error-level log line, as handed to the error reporter (Sentry). */
export interface LoggedError {
  /** The Error logged under `err`, if any. */
  err?: Error;
  msg: string;
  /** The other fields of the line (flow, runId, jobId, poller, eventId, reqId …). */
  fields: Record<string, unknown>;
}

export interface LogOptions {
  /** Known secret values to blank out of every line (and URL credential shapes). */
  scrubber?: SecretScrubber;
  /** Called for every line at error level or above (Sentry). */
  onError?: (e: LoggedError) => void;
}

const ERROR_LEVEL = 50;

export function createLogger(level: string, destination?: NodeJS.WritableStream, o: LogOptions = {}): Logger {
  const scrubber = o.scrubber ?? new SecretScrubber();
  const onError = o.onError;
  const options: LoggerOptions = {
    level,
    base: undefined,
    redact: { paths: REDACT, censor: '[redacted]' },
    // Every line logged while a request is handled carries its id.
    mixin: () => {
      const ctx = requestContext.getStore();
      return ctx ? { reqId: ctx.reqId } : {};
    },
    hooks: {
      streamWrite: (line) => scrubber.text(line),
      ...(onError
        ? {
            logMethod(args, method, lvl) {
              if (lvl >= ERROR_LEVEL) reportLogged(args as unknown[], onError);
              return method.apply(this, args);
            },
          }
        : {}),
    },
  };
  return pino(options, destination ?? pino.destination({ fd: 1, sync: false }));
}

function reportLogged(args: unknown[], onError: (e: LoggedError) => void): void {
  try {
    const [first, ...rest] = args;
    const msgArg = typeof first === 'string' ? first : rest.find((a) => typeof a === 'string');
    let err: Error | undefined;
    let fields: Record<string, unknown> = {};
    if (first instanceof Error) err = first;
    else if (first && typeof first === 'object') {
      const { err: e, ...others } = first as Record<string, unknown>;
      if (e instanceof Error) err = e;
      fields = others;
    }
    const ctx = requestContext.getStore();
    if (ctx) fields = { reqId: ctx.reqId, method: ctx.method, path: ctx.path, ...(ctx.client ? { client: ctx.client } : {}), ...fields };
    onError({ err, msg: typeof msgArg === 'string' ? msgArg : (err?.message ?? 'error'), fields });
  } catch {
    // Reporting must never break logging.
  }
}

/**
 * The service's logger: JSON lines on stdout, or pino-pretty's readable lines when stdout is a
 * terminal (LOG_FORMAT=auto) or asked for. pino-pretty is loaded only then.
 */
export async function createServiceLogger(level: string, format: 'auto' | 'json' | 'pretty', o: LogOptions = {}): Promise<Logger> {
  const pretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!pretty) return createLogger(level, undefined, o);
  const { default: prettyStream } = await import('pino-pretty');
  return createLogger(level, prettyStream({ colorize: process.stdout.isTTY === true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }), o);
}

/**
 * The logger for access lines (src/http/request-id.ts): the same destination, scrubber and
 * mixin, without path redaction. Redaction with wildcard paths costs about 10 µs a line, and
 * an access line is built here from known, credential-free fields (method, path, status, ms,
 * reqId, client label, ip); secret values in the path are still blanked by the scrubber.
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [ACCESS_LINE_HAS_NO_CREDENTIAL_FIELDS] } });
}

// pino keeps the parent's redaction when a child is given no paths: one that matches nothing replaces it.
const ACCESS_LINE_HAS_NO_CREDENTIAL_FIELDS = '__no_credential_fields_here__';

/** A logger that drops everything: for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
