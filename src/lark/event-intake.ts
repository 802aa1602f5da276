import * as lark from '@larksuiteoapi/node-sdk';
import type { Context } from 'koa';
import type { Clock } from '../clock.js';
import { InvalidInput, Unavailable } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
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
      if (id && (await o.seenEvents.get(id))) return 'duplicate';
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

function requireSecurity(o: IntakeOptions): void {
  if (!o.encryptKey && !o.verificationToken) {
    throw new Unavailable('Lark events are refused: set LARK_ENCRYPT_KEY (recommended) or LARK_VERIFICATION_TOKEN');
  }
}

/** What the Lark guards leave for the handler: a verified challenge or a verified event. */
type LarkVerified = { kind: 'challenge'; challenge: unknown } | { kind: 'event'; event: Record<string, unknown> };

/** The `lark-signature` guard of POST /api/v1/lark/callback: raw-body signature, verification token. */
function larkEventGuard(o: IntakeOptions): Guard {
  return {
    name: 'lark-signature',
    needsBody: true,
    check(ctx) {
      requireSecurity(o);
      const raw = ctx.request.rawBody ?? Buffer.alloc(0);
      if (ctx.request.jsonBody === undefined) throw new InvalidInput('event body must be JSON');
      const event = openEnvelope(ctx.request.jsonBody, o.encryptKey);
      if (event.type === 'url_verification') {
        // The challenge carries no signature headers; the token inside it is what proves it.
        assertVerificationToken(event, o.verificationToken);
        ctx.state.lark = { kind: 'challenge', challenge: event.challenge } satisfies LarkVerified;
        return;
      }
      if (o.encryptKey) verifyLarkSignature(raw, signatureHeaders(ctx), o.encryptKey, o.clock.now());
      assertVerificationToken(event, o.verificationToken);
      ctx.state.lark = { kind: 'event', event } satisfies LarkVerified;
    },
  };
}

/** The `lark-signature` guard of POST /api/v1/lark/card: card callbacks, 2.0 and legacy. */
function larkCardGuard(o: IntakeOptions): Guard {
  return {
    name: 'lark-signature',
    needsBody: true,
    check(ctx) {
      requireSecurity(o);
      const raw = ctx.request.rawBody ?? Buffer.alloc(0);
      if (ctx.request.jsonBody === undefined) throw new InvalidInput('card callback body must be JSON');
      const body = ctx.request.jsonBody as Record<string, unknown>;
      const data = openEnvelope(body, o.encryptKey);
      if (data.type === 'url_verification') {
        assertVerificationToken(data, o.verificationToken);
        ctx.state.lark = { kind: 'challenge', challenge: data.challenge } satisfies LarkVerified;
        return;
      }
      if ('encrypt' in body || 'schema' in data) {
        if (o.encryptKey) verifyLarkSignature(raw, signatureHeaders(ctx), o.encryptKey, o.clock.now());
        assertVerificationToken(data, o.verificationToken);
      } else if (o.verificationToken) {
        verifyLegacyCardSignature(raw, signatureHeaders(ctx), o.verificationToken, o.clock.now());
      }
      ctx.state.lark = { kind: 'event', event: data } satisfies LarkVerified;
    },
  };
}

/** POST /api/v1/lark/callback (events) and POST /api/v1/lark/card (card actions), both Lark-signed. */
export function larkIntakeRoutes(o: IntakeOptions, dispatcher: lark.EventDispatcher): Route[] {
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

  return [
    route({
      method: 'POST',
      path: '/api/v1/lark/callback',
      guard: larkEventGuard(o),
      async handler(ctx) {
        const verified = ctx.state.lark as LarkVerified;
        if (verified.kind === 'challenge') {
          ctx.body = { challenge: verified.challenge };
          return;
        }
        if (!eventIdOf(verified.event)) throw new InvalidInput('event has neither header.event_id nor uuid');
        // A redelivered event id is dropped by the dispatcher's handlers (the long connection's too).
        await dispatcher.invoke(verified.event, { needCheck: false });
        ctx.body = {};
      },
    }),
    route({
      method: 'POST',
      path: '/api/v1/lark/card',
      guard: larkCardGuard(o),
      async handler(ctx) {
        const verified = ctx.state.lark as LarkVerified;
        if (verified.kind === 'challenge') {
          ctx.body = { challenge: verified.challenge };
          return;
        }
        ctx.body = (await cards.invoke(verified.event)) ?? {};
      },
    }),
  ];
}

/** LARK_EVENT_MODE=ws: the SDK's long connection feeds the same dispatcher. */
export function startLongConnection(appId: string, appSecret: string, domain: string, dispatcher: lark.EventDispatcher): { close(): void } {
  const ws = new lark.WSClient({ appId, appSecret, domain, loggerLevel: lark.LoggerLevel.warn });
  void ws.start({ eventDispatcher: dispatcher });
  return { close: () => ws.close?.() };
}
