import { pino, type Logger } from 'pino';

export type { Logger };

// Paths that may carry credentials; pino replaces them before anything is written.
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'appSecret',
  'app_secret',
  'secret',
  'token',
  'encryptKey',
  '*.authorization',
  '*.app_secret',
  '*.secret',
  '*.token',
];

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: undefined, redact: { paths: REDACT, censor: '[redacted]' } },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything: for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
