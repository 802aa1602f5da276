/**
 * Blanks credentials out of text before it leaves the process (log lines, Sentry events). Two
 * nets: the values of the secrets we know (from the environment), wherever they appear, and the
 * shapes credentials take in URLs and headers (a robot webhook's key, ?access_token=, Bearer …),
 * for a URL written in a flow file or echoed in an error message.
 */
export const REDACTED = '[redacted]';

/** Values shorter than this are not hunted in free text: blanking "true" everywhere would ruin the log. */
const MIN_SECRET_LENGTH = 6;

// Variables whose value is a credential (API_TOKENS, LARK_APP_SECRET, GUANCE_API_KEY, ALERTS_WEBHOOK, SENTRY_DSN …).
const SECRET_VARIABLE = /SECRET|TOKEN|KEY|PASSWORD|PASSWD|CREDENTIAL|WEBHOOK|DSN|AUTHORIZATION/i;

/** Object keys whose value is a credential, whatever it is. */
export const SECRET_KEY = /^(authorization|proxy-authorization|cookie|set-cookie|x-lark-signature|x-bridge-signature|app_?secret|secret|token|access_?token|tenant_?access_?token|encrypt_?key|verification_?token|api_?key|password|webhook|dsn|sign(ature)?)$/i;

const URL_SHAPES: Array<[RegExp, string]> = [
  // Lark / Feishu group custom bot: …/open-apis/bot/v2/hook/<key>
  [/(\/bot\/v2\/hook\/)[^\s"'?#/\\]+/g, `$1${REDACTED}`],
  // DingTalk access_token=, WeCom key=, and the usual credential parameters.
  [/([?&](?:access_token|key|token|secret|sign|signature|api_?key|apikey|password)=)[^&\s"'#\\]+/gi, `$1${REDACTED}`],
  [/(\bBearer\s+)[A-Za-z0-9._~+/=-]{4,}/g, `$1${REDACTED}`],
  // user:password@ in a URL
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@"']+:)[^@\s/"']+@/gi, `$1${REDACTED}@`],
];

export class SecretScrubber {
  private values: string[] = [];

  /** Remembers secret values to blank out wherever they appear. */
  add(...values: Array<string | undefined>): this {
    for (const v of values) {
      if (!v || v.length < MIN_SECRET_LENGTH || this.values.includes(v)) continue;
      this.values.push(v);
      // The same value as it appears inside a JSON string (a quote or backslash in it is escaped).
      const escaped = JSON.stringify(v).slice(1, -1);
      if (escaped !== v) this.values.push(escaped);
    }
    // Longest first: a secret that contains another is blanked whole.
    this.values.sort((a, b) => b.length - a.length);
    return this;
  }

  /** Every variable of the environment that holds a credential (by its name), and each item of a list of tokens. */
  addFromEnv(env: NodeJS.ProcessEnv): this {
    for (const [name, value] of Object.entries(env)) {
      if (!value || !SECRET_VARIABLE.test(name)) continue;
      this.add(value, ...value.split(',').map((s) => s.trim()));
    }
    return this;
  }

  text(s: string): string {
    let out = s;
    for (const v of this.values) if (out.includes(v)) out = out.split(v).join(REDACTED);
    for (const [shape, replacement] of URL_SHAPES) out = out.replace(shape, replacement);
    return out;
  }

  /** A deep copy with secret keys blanked and every string scrubbed (Sentry events). */
  value<T>(v: T, depth = 0): T {
    if (typeof v === 'string') return this.text(v) as T;
    if (depth > 12 || v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => this.value(x, depth + 1)) as T;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      out[k] = SECRET_KEY.test(k) && x !== undefined && x !== null ? REDACTED : this.value(x, depth + 1);
    }
    return out as T;
  }
}
