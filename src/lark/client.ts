import * as lark from '@larksuiteoapi/node-sdk';
import type { Logger } from '../log.js';

export type LarkClient = lark.Client;

export interface LarkClientOptions {
  appId: string;
  appSecret: string;
  domain: string;
  timeoutMs: number;
  logger: Logger;
}

/**
 * The SDK client, pointed at `domain` (open.feishu.cn, open.larksuite.com, or the emulator).
 * Each client gets its own token cache: the SDK's shared default cache is keyed by app id only,
 * so two apps on different domains in one process would otherwise swap tokens. And its own
 * timeout, without touching the SDK's shared axios instance that every SDK user in the process
 * gets.
 */
export function createLarkClient(o: LarkClientOptions): LarkClient {
  return new lark.Client({
    appId: o.appId,
    appSecret: o.appSecret,
    domain: o.domain,
    appType: lark.AppType.SelfBuild,
    cache: new lark.DefaultCache(),
    // Typed as axios, but its response interceptor resolves with the body: what HttpInstance promises.
    httpInstance: withTimeout(lark.defaultHttpInstance as unknown as lark.HttpInstance, o.timeoutMs),
    logger: sdkLogger(o.logger),
    loggerLevel: lark.LoggerLevel.warn,
  });
}

/**
 * The SDK's own HTTP instance (its interceptors unwrap `response.data`, and `$return_headers`),
 * with a timeout on each request made through this wrapper only: the SDK's instance has none,
 * and a hung Open API call must not hang a run.
 */
function withTimeout(base: lark.HttpInstance, timeoutMs: number): lark.HttpInstance {
  const timed = <O extends { timeout?: number }>(opts?: O) => ({ ...opts, timeout: opts?.timeout ?? timeoutMs }) as O;
  return {
    request: (opts) => base.request(timed(opts)),
    get: (url, opts) => base.get(url, timed(opts)),
    delete: (url, opts) => base.delete(url, timed(opts)),
    head: (url, opts) => base.head(url, timed(opts)),
    options: (url, opts) => base.options(url, timed(opts)),
    post: (url, data, opts) => base.post(url, data, timed(opts)),
    put: (url, data, opts) => base.put(url, data, timed(opts)),
    patch: (url, data, opts) => base.patch(url, data, timed(opts)),
  };
}

/**
 * Forgets the client's tenant access token, so the next call fetches a new one. The SDK's
 * TokenManager caches it under CTenantAccessToken in the app id's namespace; an entry already
 * expired is a miss.
 */
export async function forgetTenantToken(client: LarkClient): Promise<void> {
  await client.cache.set(lark.CTenantAccessToken, '', 1, { namespace: client.appId });
}

/**
 * Routes SDK logs into pino. The SDK logs whole axios errors, whose config carries the
 * Authorization header and request body: only a summary of each argument is kept.
 */
export function sdkLogger(logger: Logger) {
  const summarise = (args: unknown[]) =>
    args
      .flat()
      .map((a) => {
        if (a && typeof a === 'object') {
          const o = a as { message?: string; response?: { status?: number; data?: unknown }; code?: unknown; msg?: unknown };
          if (o.response) return `${o.message ?? 'error'} status=${o.response.status} body=${JSON.stringify(o.response.data)?.slice(0, 300)}`;
          if (o.message) return o.message;
          if ('code' in o || 'msg' in o) return `code=${String(o.code)} msg=${String(o.msg)}`;
          return '[object]';
        }
        return String(a);
      })
      .join(' ');
  return {
    error: (...args: unknown[]) => logger.error({ sdk: 'lark' }, summarise(args)),
    warn: (...args: unknown[]) => logger.warn({ sdk: 'lark' }, summarise(args)),
    info: (...args: unknown[]) => logger.debug({ sdk: 'lark' }, summarise(args)),
    debug: (...args: unknown[]) => logger.debug({ sdk: 'lark' }, summarise(args)),
    trace: (...args: unknown[]) => logger.trace({ sdk: 'lark' }, summarise(args)),
  };
}
