import type { Clock } from '../clock.js';
import type { NotifyTarget } from '../flows/poller-flow-schema.js';
import type { Messenger } from '../lark/messages.js';
import type { UpstreamClient } from '../upstream/client.js';
import { dingtalkNotifier } from './dingtalk.js';
import { larkChatNotifier } from './lark-chat.js';
import { larkWebhookNotifier } from './lark-webhook.js';
import type { Notifier } from './notifier.js';
import { wecomNotifier } from './wecom.js';

export interface NotifierDeps {
  /** Absent when the Lark app is not configured. */
  messenger?: Messenger;
  upstream: UpstreamClient;
  clock: Clock;
  templatesDir: string;
}

/** The notifier for a poller's `notify`, or why there is none (the app bot without Lark credentials). */
export function createNotifier(target: NotifyTarget, template: string, deps: NotifierDeps): Notifier | { problem: string } {
  switch (target.type) {
    case 'lark-app':
      if (!deps.messenger) return { problem: 'notify.chatId posts with the app bot: set LARK_APP_ID and LARK_APP_SECRET (or use a webhook)' };
      return larkChatNotifier({ chatId: target.chatId, messenger: deps.messenger, templatesDir: deps.templatesDir, template });
    case 'lark-webhook':
      return larkWebhookNotifier({ webhook: target.webhook, secret: target.secret, upstream: deps.upstream, clock: deps.clock, templatesDir: deps.templatesDir, template });
    case 'dingtalk':
      return dingtalkNotifier({ webhook: target.webhook, secret: target.secret, upstream: deps.upstream, clock: deps.clock });
    case 'wecom':
      return wecomNotifier({ webhook: target.webhook, upstream: deps.upstream });
  }
}
