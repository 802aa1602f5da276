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
 * so two apps on different domains in one process would otherwise swap tokens.
 */
export function createLarkClient(o: LarkClientOptions): LarkClient {
  // The SDK's axios instance has no timeout by default; a hung Open API call must not hang a run.
  lark.defaultHttpInstance.defaults.timeout = o.timeoutMs;
  return new lark.Client({
    appId: o.appId,
    appSecret: o.appSecret,
    domain: o.domain,
    appType: lark.AppType.SelfBuild,
    cache: new lark.DefaultCache(),
    logger: sdkLogger(o.logger),
    loggerLevel: lark.LoggerLevel.warn,
  });
}

/**
 * Routes SDK logs into pino. The SDK logs whole axios errors, whose config carries the
 * Authorization header and request body: only a summary of each argument is kept.
 */
function sdkLogger(logger: Logger) {
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
