import * as lark from '@larksuiteoapi/node-sdk';
import type { Clock } from '../clock.js';
import type { ReadinessCheck } from '../http/health-routes.js';
import type { Logger } from '../log.js';
import type { LarkClient } from './client.js';
import { classifyLarkFailure } from './lark-error.js';

/** At most one token request per this long comes from /readyz probes (the SDK's own calls aside). */
export const TOKEN_CHECK_RETRY_MS = 60_000;
/** How long a probe waits for a token request under way before it answers. */
const READINESS_WAIT_MS = 2_000;

/**
 * Can the app get a tenant access token? /readyz check `lark-token`. A token the SDK holds in its
 * cache (valid for about two hours) answers without any call; only when there is none does a
 * probe ask Lark (POST /open-apis/auth/v3/tenant_access_token/internal, through the SDK, which
 * caches what it gets for the next Open API call), at most once a minute however many probes come.
 * https://open.feishu.cn/document/server-docs/authentication-management/access-token/tenant_access_token_internal
 */
export class TenantTokenCheck {
  private lastAttemptAt = -Infinity;
  private lastError: string | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly client: LarkClient,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  readiness(): ReadinessCheck {
    return {
      name: 'lark-token',
      check: async () => {
        if (await this.cached()) return { ok: true, detail: 'tenant access token cached' };
        if (this.inFlight || this.clock.now() - this.lastAttemptAt >= TOKEN_CHECK_RETRY_MS) await this.waitBriefly(this.request());
        if (await this.cached()) return { ok: true, detail: 'tenant access token obtained' };
        if (this.inFlight) return { ok: false, detail: 'asking Lark for a tenant access token: no answer yet' };
        const ago = Math.round((this.clock.now() - this.lastAttemptAt) / 1000);
        if (this.lastError) {
          return {
            ok: false,
            detail: `cannot get a tenant access token (POST /open-apis/auth/v3/tenant_access_token/internal, ${ago} s ago: ${this.lastError}); check LARK_APP_ID, LARK_APP_SECRET and LARK_DOMAIN`,
          };
        }
        // Obtained at the last try and dropped since (a refused token is forgotten to be renewed): the next call gets one.
        return { ok: true, detail: `tenant access token obtained ${ago} s ago` };
      },
    };
  }

  private async cached(): Promise<boolean> {
    return Boolean(await this.client.cache.get(lark.CTenantAccessToken, { namespace: this.client.appId }));
  }

  /** One request at a time; its outcome is kept for the probes that follow. Never throws. */
  private request(): Promise<void> {
    this.inFlight ??= (async () => {
      this.lastAttemptAt = this.clock.now();
      try {
        await this.client.tokenManager.getTenantAccessToken();
        this.lastError = undefined;
      } catch (err) {
        this.lastError = classifyLarkFailure(err).message;
        this.logger.error({ err: this.lastError }, 'Lark: no tenant access token; Open API calls fail until one is obtained');
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  private async waitBriefly(attempt: Promise<void>): Promise<void> {
    const done = new AbortController();
    await Promise.race([attempt, this.clock.sleep(READINESS_WAIT_MS, done.signal)]);
    done.abort();
  }
}
