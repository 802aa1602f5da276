import type { Clock } from '../clock.js';
import type { ReadinessCheck } from '../http/health-routes.js';
import type { Logger } from '../log.js';
import type { LarkClient } from './client.js';
import type { LarkCall } from './lark-call.js';
import { assertLarkOk, LarkApiError } from './lark-error.js';

export interface BotInfo {
  openId: string;
  name: string;
}

/**
 * GET /open-apis/bot/v3/info: the app's bot, its open_id among them. No scope needed, only the
 * bot ability. The answer carries `bot` at the top level, not under `data`.
 * https://open.feishu.cn/document/ukTMukTMukTM/uAjMxEjLwITMx4CMyETM
 */
export function createBotInfoApi(client: LarkClient, larkCall: LarkCall): () => Promise<BotInfo> {
  return async () => {
    const answer = await larkCall('bot.info', 'bot', async () =>
      assertLarkOk((await client.request({ method: 'GET', url: '/open-apis/bot/v3/info' })) as { code?: number; msg?: string; bot?: { open_id?: string; app_name?: string } }),
    );
    const openId = answer.bot?.open_id;
    if (!openId) throw new LarkApiError(-1, 'bot/v3/info answered without bot.open_id (is the bot ability enabled?)', 200, false);
    return { openId, name: answer.bot?.app_name ?? '' };
  };
}

/** How long a /readyz probe waits for an attempt under way before it reports. */
const READINESS_WAIT_MS = 2_000;

/** How long after a failed attempt the next need (a message, a /readyz probe) tries again. */
export const BOT_INFO_RETRY_MS = 60_000;

/**
 * The bot's own open id, learned from the Open API at start: an @mention of the bot is told from
 * other mentions by it. Until it is known, messages that need it are not taken and /readyz says
 * why; a later need tries again (at most once a minute), so a Lark outage at start heals itself.
 */
export class BotIdentity {
  private info: BotInfo | undefined;
  private lastError: string | undefined;
  private lastAttemptAt = -Infinity;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly fetchInfo: () => Promise<BotInfo>,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Asks Lark once (joining an attempt under way); never throws: the failure is kept for /readyz. */
  learn(): Promise<void> {
    this.inFlight ??= (async () => {
      this.lastAttemptAt = this.clock.now();
      try {
        this.info = await this.fetchInfo();
        this.lastError = undefined;
        this.logger.info({ botOpenId: this.info.openId, bot: this.info.name }, 'bot identity learned');
      } catch (err) {
        this.lastError = (err as Error).message;
        this.logger.error({ err }, '@bot replies are off: the bot open id could not be learned (GET /open-apis/bot/v3/info)');
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  /** The open id when known. */
  known(): string | undefined {
    return this.info?.openId;
  }

  /** The open id, learning it first when it is not known and the last try is old enough. */
  async openId(): Promise<string | undefined> {
    if (this.info) return this.info.openId;
    if (this.inFlight) await this.inFlight;
    else if (this.clock.now() - this.lastAttemptAt >= BOT_INFO_RETRY_MS) await this.learn();
    return this.known();
  }

  /**
   * /readyz check `lark-bot`: failing while the open id is unknown (@bot replies cannot be taken).
   * A probe starts a new attempt when one is due and waits for it at most READINESS_WAIT_MS.
   */
  readiness(): ReadinessCheck {
    return {
      name: 'lark-bot',
      check: async () => {
        if (!this.known()) {
          const attempt = this.openId();
          // Only an attempt under way is waited for (and not for long): a probe must answer.
          await (this.inFlight ? Promise.race([attempt, this.clock.sleep(READINESS_WAIT_MS)]) : attempt);
        }
        const openId = this.known();
        if (openId) return { ok: true, detail: `bot open id ${openId}` };
        const why = this.lastError ?? 'not learned yet';
        return { ok: false, detail: `bot open id unknown (GET /open-apis/bot/v3/info: ${why}); @bot replies are ignored until it is learned` };
      },
    };
  }
}
