import { readFile } from 'node:fs/promises';
import type { LoggedError } from './log.js';
import { REDACTED, type SecretScrubber } from './secret-scrubber.js';

/** Where error-level log lines go besides the log: Sentry, when SENTRY_DSN is set. */
export interface ErrorReporting {
  report(e: LoggedError): void;
  /** Sends what is queued (on stop), waiting at most `ms`. */
  flush(ms: number): Promise<void>;
}

export interface SentryOptions {
  dsn: string;
  environment?: string;
  scrubber: SecretScrubber;
}

// Log fields that become searchable Sentry tags; every other field goes to the event's extra data.
const TAG_FIELDS = ['flow', 'poller', 'runId', 'jobId', 'eventId', 'messageId', 'reqId', 'method', 'path', 'client', 'stage', 'file'];

/**
 * Starts Sentry. @sentry/node is imported here, only when SENTRY_DSN is set: loading it costs
 * ~80 MB of RSS. Every event and breadcrumb goes through the scrubber before it is sent:
 * Authorization and cookie headers, keys named like a secret, and the values of the secrets the
 * environment holds are blanked.
 */
export async function startSentry(o: SentryOptions): Promise<ErrorReporting> {
  const Sentry = await import('@sentry/node');
  const integrations = Sentry.getDefaultIntegrationsWithoutPerformance()
    .filter((i) => i.name !== 'OnUnhandledRejection')
    // An unhandled rejection still ends the process as Node would; Sentry has it first.
    .concat(Sentry.onUnhandledRejectionIntegration({ mode: 'strict' }));
  Sentry.init({
    dsn: o.dsn,
    environment: o.environment,
    release: await releaseName(),
    sendDefaultPii: false,
    defaultIntegrations: false,
    integrations,
    beforeSend: (event) => scrubEvent(event, o.scrubber),
    beforeBreadcrumb: (crumb) => o.scrubber.value(crumb),
  });
  return {
    report({ err, msg, fields }) {
      // The Lark SDK's own error lines: the call they belong to is logged (and reported) by our code once it gives up.
      if (fields.sdk) return;
      const tags: Record<string, string> = {};
      const extra: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(fields)) {
        if (TAG_FIELDS.includes(k) && (typeof v === 'string' || typeof v === 'number')) tags[k] = String(v).slice(0, 200);
        else extra[k] = v;
      }
      if (err) Sentry.captureException(err, { tags, extra: { ...extra, logMessage: msg } });
      else Sentry.captureMessage(msg, { level: 'error', tags, extra });
    },
    async flush(ms) {
      await Sentry.flush(ms).catch(() => false);
    },
  };
}

/** The event as sent: secrets blanked in every string, request headers and cookies that carry credentials removed. */
export function scrubEvent<T extends { request?: { headers?: Record<string, string>; cookies?: unknown; query_string?: unknown } }>(event: T, scrubber: SecretScrubber): T {
  const clean = scrubber.value(event);
  if (clean.request) {
    // A query string may hold a token (?token=, ?access_token=): never sent.
    if (clean.request.query_string !== undefined) clean.request.query_string = REDACTED;
    delete clean.request.cookies;
  }
  return clean;
}

async function releaseName(): Promise<string | undefined> {
  try {
    // src/sentry.ts and dist/sentry.js both sit one level below package.json.
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { name?: string; version?: string };
    return pkg.name && pkg.version ? `${pkg.name}@${pkg.version}` : undefined;
  } catch {
    return undefined;
  }
}
