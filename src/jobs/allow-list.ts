import { InvalidInput } from '../errors.js';

interface Prefix {
  origin: string;
  path: string;
  raw: string;
}

/**
 * Decides whether task-sync may call a client-supplied URL. A URL passes only when its scheme is
 * http(s), it carries no credentials, and its origin equals a configured prefix's origin and its
 * path starts with that prefix's path (so "https://open.feishu.cn.evil.example" never matches).
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
    if (url.username || url.password) {
      throw new InvalidInput('webhookUrl: credentials in the URL are not allowed');
    }
    const ok = parsed.some((p) => url.origin === p.origin && url.pathname.startsWith(p.path));
    if (!ok) {
      throw new InvalidInput('webhookUrl: not in the allow-list (TASK_SYNC_ALLOWED_URLS)', {
        allowedPrefixes: parsed.map((p) => p.raw),
      });
    }
    return url;
  };
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}
