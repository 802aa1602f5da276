import { InvalidInput } from '../errors.js';

interface Prefix {
  origin: string;
  path: string;
  raw: string;
}

// An encoded "/", "\" or "." in a path is decoded by some servers after our check: "/hooks/..%2fadmin"
// passes a prefix test here and reaches "/admin" there. Trigger URLs never need them.
const ENCODED_SEPARATOR = /%(2f|5c|2e)/i;

/**
 * Decides whether task-sync may call a client-supplied URL, and returns the URL to call (the
 * parsed, normalised form, so what is called is exactly what was checked). A URL passes only
 * when its scheme is http(s), it carries no credentials, its origin (scheme, host, port after
 * WHATWG normalisation: host case, default port and IP spellings folded) equals a configured
 * prefix's origin, and its path is that prefix's path or lies below it, segment by segment.
 */
export function createUrlAllowList(prefixes: readonly string[]) {
  const parsed: Prefix[] = prefixes.map((raw) => {
    const u = new URL(raw);
    return { origin: u.origin, path: u.pathname, raw };
  });

  return function assertAllowed(input: string): URL {
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      throw new InvalidInput(`webhookUrl: "${truncate(input)}" is not an absolute URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InvalidInput(`webhookUrl: scheme "${url.protocol.replace(':', '')}" is not allowed; use http or https`);
    }
    if (url.username || url.password || /^[a-z][a-z0-9+.-]*:\/*[^/?#]*@/i.test(input)) {
      throw new InvalidInput('webhookUrl: credentials in the URL are not allowed');
    }
    if (ENCODED_SEPARATOR.test(url.pathname)) {
      throw new InvalidInput('webhookUrl: percent-encoded "/", "\\" or "." in the path are not allowed');
    }
    if (!parsed.some((p) => url.origin === p.origin && isUnder(url.pathname, p.path))) {
      throw new InvalidInput('webhookUrl: not in the allow-list (TASK_SYNC_ALLOWED_URLS)', {
        allowedPrefixes: parsed.map((p) => p.raw),
      });
    }
    url.hash = ''; // never sent anyway; keeps the stored URL to what is called
    return url;
  };
}

/** "/a/b/" covers "/a/b/..." ; "/a/b" covers "/a/b" and "/a/b/...", never "/a/bc". */
function isUnder(path: string, prefix: string): boolean {
  if (prefix.endsWith('/')) return path.startsWith(prefix);
  return path === prefix || path.startsWith(`${prefix}/`);
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
