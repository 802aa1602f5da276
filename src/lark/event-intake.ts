import * as lark from '@larksuiteoapi/node-sdk';
import { Router } from '@koa/router';
import type { Context } from 'koa';
import type { Clock } from '../clock.js';
import { BadRequest, ServiceUnavailable } from '../errors.js';
import type { Logger } from '../log.js';
import type { KeySpace } from '../store/store.js';
import {
  assertVerificationToken,
  eventIdOf,
  openEnvelope,
  verifyLarkSignature,
  verifyLegacyCardSignature,
  type SignatureHeaders,
} from './event-security.js';

export type EventDispatcher = lark.EventDispatcher;

/** Lark redelivers for about seven hours; seen ids are kept longer than that. */
const SEEN_EVENT_TTL_MS = 12 * 60 * 60 * 1000;

export interface ApprovalTaskEvent {
  approvalCode: string;
  instanceCode: string;
  taskId: string;
  status: string;
  userId?: string;
  openId?: string;
}

export interface CardAction {
  value: Record<string, unknown>;
  operatorOpenId?: string;
  messageId?: string;
}

export interface IntakeHandlers {
  /** Must record the event durably and return quickly: the work runs after the answer. */
  approvalTask(ev: ApprovalTaskEvent): Promise<unknown>;
  cardAction(action: CardAction): Promise<{ ok: boolean; message: string }>;
}

export interface IntakeOptions {
  encryptKey?: string;
  verificationToken?: string;
  seenEvents: KeySpace<number>;
  clock: Clock;
  logger: Logger;
  handlers: IntakeHandlers;
}

/**
 * The SDK dispatcher both transports feed (HTTP callback and long connection). Its handlers
 * drop an event id seen before, then hand the event on. Signatures are checked before the
 * dispatcher sees anything, so it is built without keys.
 */
export function createEventDispatcher(o: IntakeOptions): lark.EventDispatcher {
  const dispatcher = new lark.EventDispatcher({ loggerLevel: lark.LoggerLevel.error });
  dispatcher.register({
    approval_task: async (data: Record<string, unknown>) => {
      const id = String(data.event_id ?? data.uuid ?? '');
      if (id && o.seenEvents.get(id)) return 'duplicate';
      await o.handlers.approvalTask({
        approvalCode: String(data.approval_code ?? ''),
        instanceCode: String(data.instance_code ?? ''),
        taskId: String(data.task_id ?? ''),
        status: String(data.status ?? ''),
        userId: data.user_id ? String(data.user_id) : undefined,
        openId: data.open_id ? String(data.open_id) : undefined,
      });
      if (id) await o.seenEvents.set(id, 1, o.clock.now() + SEEN_EVENT_TTL_MS);
      return 'ok';
    },
  } as Record<string, (data: any) => Promise<unknown>>);
  return dispatcher;
}

function signatureHeaders(ctx: Context): SignatureHeaders {
  return {
    timestamp: ctx.get('x-lark-request-timestamp'),
    nonce: ctx.get('x-lark-request-nonce'),
    signature: ctx.get('x-lark-signature'),
  };
}

/** POST /api/v1/lark/callback (events) and POST /api/v1/lark/card (card actions). */
export function larkIntakeRoutes(o: IntakeOptions, dispatcher: lark.EventDispatcher): Router {
  const router = new Router();
  const cards = new lark.CardActionHandler({ loggerLevel: lark.LoggerLevel.error }, async (data: Record<string, any>) => {
    // v2 card.action.trigger: operator + context; legacy card callbacks: open_id + open_message_id.
    const action: CardAction = {
      value: (data.action?.value ?? {}) as Record<string, unknown>,
      operatorOpenId: data.operator?.open_id ?? data.open_id,
      messageId: data.context?.open_message_id ?? data.open_message_id,
    };
    const answer = await o.handlers.cardAction(action);
    return { toast: { type: answer.ok ? 'success' : 'error', content: answer.message } };
  });

  function requireSecurity(): void {
    if (!o.encryptKey && !o.verificationToken) {
      throw new ServiceUnavailable('Lark events are refused: set LARK_ENCRYPT_KEY (recommended) or LARK_VERIFICATION_TOKEN');
    }
  }

  router.post('/api/v1/lark/callback', async (ctx) => {
    requireSecurity();
    const raw = ctx.request.rawBody ?? Buffer.alloc(0);
    if (ctx.request.jsonBody === undefined) throw new BadRequest('event body must be JSON');
    const event = openEnvelope(ctx.request.jsonBody, o.encryptKey);
    if (event.type === 'url_verification') {
      // The challenge carries no signature headers; the token inside it is what proves it.
      assertVerificationToken(event, o.verificationToken);
      ctx.body = { challenge: event.challenge };
      return;
    }
    if (o.encryptKey) verifyLarkSignature(raw, signatureHeaders(ctx), o.encryptKey, o.clock.now());
    assertVerificationToken(event, o.verificationToken);
    if (!eventIdOf(event)) throw new BadRequest('event has neither header.event_id nor uuid');
    // A redelivered event id is dropped by the dispatcher's handlers (the long connection's too).
    await dispatcher.invoke(event, { needCheck: false });
    ctx.body = {};
  });

  router.post('/api/v1/lark/card', async (ctx) => {
    requireSecurity();
    const raw = ctx.request.rawBody ?? Buffer.alloc(0);
    if (ctx.request.jsonBody === undefined) throw new BadRequest('card callback body must be JSON');
    const body = ctx.request.jsonBody as Record<string, unknown>;
    const data = openEnvelope(body, o.encryptKey);
    if (data.type === 'url_verification') {
      assertVerificationToken(data, o.verificationToken);
      ctx.body = { challenge: data.challenge };
      return;
    }
    if ('encrypt' in body || 'schema' in data) {
      if (o.encryptKey) verifyLarkSignature(raw, signatureHeaders(ctx), o.encryptKey, o.clock.now());
      assertVerificationToken(data, o.verificationToken);
    } else if (o.verificationToken) {
      verifyLegacyCardSignature(raw, signatureHeaders(ctx), o.verificationToken, o.clock.now());
    }
    ctx.body = (await cards.invoke(data)) ?? {};
  });

  return router;
}

/** LARK_EVENT_MODE=ws: the SDK's long connection feeds the same dispatcher. */
export function startLongConnection(appId: string, appSecret: string, domain: string, dispatcher: lark.EventDispatcher): { close(): void } {
  const ws = new lark.WSClient({ appId, appSecret, domain, loggerLevel: lark.LoggerLevel.warn });
  void ws.start({ eventDispatcher: dispatcher });
  return { close: () => ws.close?.() };
}
