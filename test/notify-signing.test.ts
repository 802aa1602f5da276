import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock.js';
import { dingtalkNotifier, dingtalkSign } from '../src/notify/dingtalk.js';
import { larkCustomBotSign, larkWebhookNotifier } from '../src/notify/lark-webhook.js';
import type { IssueMessage } from '../src/notify/notifier.js';
import type { UpstreamClient } from '../src/upstream/client.js';

/**
 * Custom-bot signing, against vectors computed apart from this code (Python's hmac module):
 * Lark keys the HMAC with timestamp + "\n" + secret over nothing; DingTalk keys it with the secret
 * over timestamp + "\n" + secret. Lark's timestamp is in seconds, DingTalk's in milliseconds.
 */
const TEMPLATES = fileURLToPath(new URL('../templates', import.meta.url));
const clockAt = (ms: number): Clock => ({ now: () => ms, sleep: async () => undefined });

function fakeUpstream(answer: string) {
  const calls: Array<{ url: string; body: any }> = [];
  const upstream: UpstreamClient = {
    postJson: async (url, body) => {
      calls.push({ url, body });
      return { kind: 'success', httpStatus: 200, response: answer, durationMs: 1 };
    },
    get: async () => ({ kind: 'success', httpStatus: 200, response: '{}', durationMs: 1 }),
    close: async () => undefined,
  };
  return { upstream, calls };
}

const message: IssueMessage = {
  itemId: 'issue_1',
  title: 'db-1 disk full',
  level: 'P0',
  severity: 'critical',
  source: 'guance',
  resource: 'db-1',
  fields: [],
  createdAt: Date.parse('2026-11-20T10:00:00Z'),
  repliesOn: false,
};

describe('Lark custom bot signing', () => {
  it('matches the documented construction', () => {
    expect(larkCustomBotSign(1764000000, 'bot-secret 密钥')).toBe('CeUovXd8hjX/weX83c+yoVwxrB5ZM+s+uW9FLcNpZWU=');
    expect(larkCustomBotSign(1764000000, 'x')).toBe('DaD8BSY+EytFg6O6Nlv0y0kIa7NlvJOssi5sNbBf0f4=');
  });

  it('sends timestamp (seconds, as a string) and sign in the body when a secret is set', async () => {
    const { upstream, calls } = fakeUpstream('{"code":0,"msg":"success"}');
    const n = larkWebhookNotifier({ webhook: 'http://127.0.0.1:9/open-apis/bot/v2/hook/tok', secret: 'bot-secret 密钥', upstream, clock: clockAt(1764000000999), templatesDir: TEMPLATES, template: 'issue-card' });
    await n.post(message, 'k');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe('http://127.0.0.1:9/open-apis/bot/v2/hook/tok');
    expect(calls[0]!.body.timestamp).toBe('1764000000');
    expect(calls[0]!.body.sign).toBe('CeUovXd8hjX/weX83c+yoVwxrB5ZM+s+uW9FLcNpZWU=');
    expect(calls[0]!.body.msg_type).toBe('interactive');
  });

  it('sends neither without a secret', async () => {
    const { upstream, calls } = fakeUpstream('{"code":0}');
    const n = larkWebhookNotifier({ webhook: 'http://127.0.0.1:9/open-apis/bot/v2/hook/tok', upstream, clock: clockAt(1764000000999), templatesDir: TEMPLATES, template: 'issue-card' });
    await n.post(message, 'k');
    expect(Object.keys(calls[0]!.body).sort()).toEqual(['card', 'msg_type']);
  });
});

describe('DingTalk robot signing', () => {
  it('matches the documented construction', () => {
    expect(dingtalkSign(1764000000123, 'SECabc/+=')).toBe('4nUbEq2kcgrTG6/3Egnlsqv46rT+bZNoNdEFoU7oEhM=');
  });

  it('puts timestamp (ms) and the URL-encoded sign in the query, keeping the access token', async () => {
    const { upstream, calls } = fakeUpstream('{"errcode":0,"errmsg":"ok"}');
    const n = dingtalkNotifier({ webhook: 'http://127.0.0.1:9/robot/send?access_token=tok', secret: 'SECabc/+=', upstream, clock: clockAt(1764000000123) });
    await n.post(message, 'k');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe(`http://127.0.0.1:9/robot/send?access_token=tok&timestamp=1764000000123&sign=${encodeURIComponent('4nUbEq2kcgrTG6/3Egnlsqv46rT+bZNoNdEFoU7oEhM=')}`);
    expect(calls[0]!.body.msgtype).toBe('markdown');
  });

  it('leaves the webhook as it is without a secret', async () => {
    const { upstream, calls } = fakeUpstream('{"errcode":0}');
    const n = dingtalkNotifier({ webhook: 'http://127.0.0.1:9/robot/send?access_token=tok', upstream, clock: clockAt(1764000000123) });
    await n.post(message, 'k');
    expect(calls[0]!.url).toBe('http://127.0.0.1:9/robot/send?access_token=tok');
  });
});
