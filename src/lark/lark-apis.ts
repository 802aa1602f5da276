import type { Clock } from '../clock.js';
import { createApprovalApi, type ApprovalApi } from './approval.js';
import { createBotInfoApi, type BotInfo } from './bot-info.js';
import { createLarkClient, forgetTenantToken, type LarkClientOptions } from './client.js';
import { createLarkCall } from './lark-call.js';
import type { Metrics } from '../metrics/metrics.js';
import { createMessenger, type Messenger } from './messages.js';
import { LarkRateLimiter } from './rate-limiter.js';
import { TenantTokenCheck } from './tenant-token.js';
import { createUserNames, type UserNames } from './user-names.js';

export interface LarkApis {
  messenger: Messenger;
  approvals: ApprovalApi;
  /** The app's bot (its open id tells @mentions of the bot apart). */
  botInfo: () => Promise<BotInfo>;
  userNames: UserNames;
  /** Whether a tenant access token can be had (/readyz). */
  tenantToken: TenantTokenCheck;
}

/** One app's Open API surface: one SDK client, one rate limiter (Lark's limits are per app and per API). */
export function createLarkApis(o: LarkClientOptions & { clock: Clock; metrics?: Metrics }): LarkApis {
  const client = createLarkClient(o);
  const larkCall = createLarkCall({
    limiter: new LarkRateLimiter({ clock: o.clock }),
    clock: o.clock,
    logger: o.logger,
    renewToken: () => forgetTenantToken(client),
    metrics: o.metrics,
  });
  return {
    messenger: createMessenger(client, larkCall),
    approvals: createApprovalApi(client, larkCall),
    botInfo: createBotInfoApi(client, larkCall),
    userNames: createUserNames(client, larkCall, o.clock, o.logger),
    tenantToken: new TenantTokenCheck(client, o.clock, o.logger),
  };
}
