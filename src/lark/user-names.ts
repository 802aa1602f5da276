import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { LarkClient } from './client.js';
import type { LarkCall } from './lark-call.js';
import { assertLarkOk, classifyLarkFailure } from './lark-error.js';

/** Looks up people's display names; undefined when the contact API does not tell. */
export interface UserNames {
  nameOf(openId: string): Promise<string | undefined>;
}

const NAME_TTL_MS = 60 * 60 * 1000;
// A refusal (missing scope, user outside the app's contact range) is not asked again for a while.
const MISS_TTL_MS = 10 * 60 * 1000;
const MAX_CACHED = 1000;

/**
 * GET /open-apis/contact/v3/users/:user_id?user_id_type=open_id → data.user.name. The call needs a
 * contact scope (contact:contact.base:readonly or wider) and `name` comes only with
 * contact:user.base:readonly; the user must be in the app's contact range. Without them the
 * answer is an error or has no name, and callers fall back to the open id.
 * https://open.feishu.cn/document/server-docs/contact-v3/user/get
 */
export function createUserNames(client: LarkClient, larkCall: LarkCall, clock: Clock, logger: Logger): UserNames {
  const cache = new Map<string, { name?: string; until: number }>();
  const reported = new Set<number>();
  return {
    async nameOf(openId) {
      const hit = cache.get(openId);
      if (hit && hit.until > clock.now()) return hit.name;
      let name: string | undefined;
      try {
        const answer = await larkCall('contact.user.get', 'contact', async () =>
          assertLarkOk(await client.contact.v3.user.get({ path: { user_id: openId }, params: { user_id_type: 'open_id' } })),
        );
        name = answer.data?.user?.name || undefined;
      } catch (err) {
        const failure = classifyLarkFailure(err);
        // Once per code: a missing scope would otherwise be logged at every message.
        if (!reported.has(failure.code)) {
          reported.add(failure.code);
          logger.warn({ code: failure.code, msg: failure.larkMsg }, 'user names unavailable from the contact API; open ids are shown instead');
        }
      }
      if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
      cache.set(openId, { name, until: clock.now() + (name ? NAME_TTL_MS : MISS_TTL_MS) });
      return name;
    },
  };
}
