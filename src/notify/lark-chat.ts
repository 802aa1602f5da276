import { AppError } from '../errors.js';
import { renderCard } from '../lark/card-template.js';
import { LarkApiError } from '../lark/lark-error.js';
import type { Messenger } from '../lark/messages.js';
import { issueCardVars } from './issue-card-vars.js';
import { NotifyError, type Notifier } from './notifier.js';

/**
 * Posts cards with the app bot to a chat it is in: the only form whose cards @bot replies can
 * answer. The dedup key is Lark's message `uuid`: a repeat within an hour is not posted again
 * (https://open.feishu.cn/document/server-docs/im-v1/message/create), which covers a crash
 * between Lark's accept and our record of it.
 */
export function larkChatNotifier(o: { chatId: string; messenger: Messenger; templatesDir: string; template: string }): Notifier {
  return {
    type: 'lark-app',
    target: o.chatId,
    async post(message, dedupKey) {
      let card: Record<string, unknown>;
      try {
        card = await renderCard(o.templatesDir, o.template, issueCardVars(message));
      } catch (err) {
        throw new NotifyError(err instanceof AppError || err instanceof SyntaxError ? `card template ${o.template}: ${err.message}` : String(err), false);
      }
      try {
        const { messageId } = await o.messenger.sendToChat(o.chatId, 'interactive', card, dedupKey);
        return { messageId, chatId: o.chatId };
      } catch (err) {
        if (err instanceof LarkApiError) throw new NotifyError(err.message, err.retryable);
        throw new NotifyError((err as Error).message ?? String(err), true);
      }
    },
  };
}
