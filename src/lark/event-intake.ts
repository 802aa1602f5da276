import * as lark from '@larksuiteoapi/node-sdk';
import type { Context } from 'koa';
import type { Clock } from '../clock.js';
import { InvalidInput } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
import type { Logger } from '../log.js';
import type { DuplicateKind, Metrics } from '../metrics/metrics.js';
import type { KeySpace } from '../store/store.js';
import type { SignatureHeaders } from './event-security.js';
import { sdkLogger } from './client.js';
import { holdFramesUntilListening } from './ws-hold-frames.js';
import { readReceivedMessage, type ReceivedMessage } from './received-message.js';
import { handleOnce, type Once, type SeenMark } from './seen-events.js';
import { verifyCardCallback, verifyEventCallback, type LarkSecrets, type VerifiedCallback } from './verify-callback.js';

export type EventDispatcher = lark.EventDispatcher;

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
  /**
   * A chat message that reached the bot (im.message.receive_v1). Like approvalTask: records what
   * it needs durably and returns; the slow part runs after the answer. Absent: messages are
   * acknowledged and dropped.
   */
  message?(msg: ReceivedMessage): Promise<unknown>;
}

export interface IntakeOptions extends LarkSecrets {
  seenEvents: KeySpace<SeenMark>;
  clock: Clock;
  logger: Logger;
  handlers: IntakeHandlers;
  /** Counts the repeats dropped. */
  metrics?: Metrics;
}

/** handleOnce on the intake's seen ids, counting a repeat by what it repeated. */
async function once<T>(o: IntakeOptions, kind: DuplicateKind, key: string, work: () => Promise<T>): Promise<Once<T>> {
  const result = await handleOnce(o.seenEvents, o.clock, key, work);
  if (!result.ran) o.metrics?.eventDuplicate(kind);
  return result;
}

/** What Lark shows the presser: a toast. https://open.feishu.cn/document/uAjLw4CM/ukzMukzMukzM/feishu-cards/card-callback-communication */
export interface CardAnswer {
  toast: { type: 'success' | 'error'; content: string };
}

/** A 2.0 press (the SDK flattens header and event) or a legacy one: who pressed what, on which message. */
async function pressCard(o: IntakeOptions, data: Record<string, any>): Promise<CardAnswer> {
  const value = data.action?.value;
  const action: CardAction = {
    value: value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {},
    operatorOpenId: data.operator?.open_id ?? data.open_id,
    messageId: data.context?.open_message_id ?? data.open_message_id,
  };
  const answer = await o.handlers.cardAction(action);
  return { toast: { type: answer.ok ? 'success' : 'error', content: answer.message } };
}

/**
 * The SDK dispatcher both transports feed (HTTP callback and long connection). Each handler
 * claims the event id before it runs, so a redelivery, or a second delivery racing the first,
 * does nothing. Signatures are checked before the dispatcher sees anything (the long connection
 * is authenticated when it opens), so it is built without keys.
 */
export function createEventDispatcher(o: IntakeOptions): lark.EventDispatcher {
  const dispatcher = new lark.EventDispatcher({ loggerLevel: lark.LoggerLevel.error });
  const idOf = (data: Record<string, unknown>) => {
    const id = data.event_id ?? data.uuid;
    if (typeof id !== 'string' || !id) throw new InvalidInput('event has neither header.event_id nor uuid');
    return id;
  };
  dispatcher.register({
    approval_task: async (data: Record<string, unknown>) => {
      await once(o, 'event', idOf(data), () =>
        o.handlers.approvalTask({
          approvalCode: String(data.approval_code ?? ''),
          instanceCode: String(data.instance_code ?? ''),
          taskId: String(data.task_id ?? ''),
          status: String(data.status ?? ''),
          userId: data.user_id ? String(data.user_id) : undefined,
          openId: data.open_id ? String(data.open_id) : undefined,
        }),
      );
      return undefined;
    },
    // Card presses over the long connection (and to the event URL, when the console sends them there).
    'card.action.trigger': async (data: Record<string, unknown>) => {
      const pressed = await once(o, 'card', idOf(data), () => pressCard(o, data));
      return pressed.ran ? pressed.result : {};
    },
    // Lark may deliver one message under several event ids: claimed by event id, then by message id.
    'im.message.receive_v1': async (data: Record<string, unknown>) => {
      const msg = readReceivedMessage(data);
      const handle = o.handlers.message;
      if (!handle) return undefined;
      await once(o, 'event', msg.eventId, () => once(o, 'message', messageKey(msg.messageId), () => handle(msg)));
      return undefined;
    },
  } as Record<string, (data: any) => Promise<unknown>>);
  return dispatcher;
}

/** The seen-events key of a chat message: apart from event ids (uuids), which never start so. */
export const messageKey = (messageId: string) => `im.message:${messageId}`;

function signatureHeaders(ctx: Context): SignatureHeaders {
  return {
    timestamp: ctx.get('x-lark-request-timestamp'),
    nonce: ctx.get('x-lark-request-nonce'),
    signature: ctx.get('x-lark-signature'),
  };
}

/** The `lark-signature` guard: one pure verifier over the raw bytes, before anything is parsed for use. */
function larkGuard(o: IntakeOptions, verify: (s: LarkSecrets, h: SignatureHeaders, raw: Buffer, nowMs: number) => VerifiedCallback): Guard {
  const secrets: LarkSecrets = { encryptKey: o.encryptKey, verificationToken: o.verificationToken };
  return {
    name: 'lark-signature',
    needsBody: true,
    check(ctx) {
      ctx.state.lark = verify(secrets, signatureHeaders(ctx), ctx.request.rawBody ?? Buffer.alloc(0), o.clock.now());
    },
  };
}

const isCardAnswer = (v: unknown): v is CardAnswer => !!v && typeof v === 'object' && 'toast' in v;

/** POST /api/v1/lark/callback (events) and POST /api/v1/lark/card (card actions), both Lark-signed. */
export function larkIntakeRoutes(o: IntakeOptions, dispatcher: lark.EventDispatcher): Route[] {
  // The SDK's handler does the parsing; it swallows a handler's error, so the error is carried out.
  const cards = new lark.CardActionHandler({ loggerLevel: lark.LoggerLevel.error }, async (data: Record<string, any>) => {
    try {
      return { answer: await pressCard(o, data) };
    } catch (error) {
      return { error };
    }
  });

  return [
    route({
      method: 'POST',
      path: '/api/v1/lark/callback',
      guard: larkGuard(o, verifyEventCallback),
      async handler(ctx) {
        const verified = ctx.state.lark as ReturnType<typeof verifyEventCallback>;
        if (verified.kind === 'challenge') {
          ctx.body = { challenge: verified.challenge };
          return;
        }
        const result = await dispatcher.invoke(verified.data, { needCheck: false });
        ctx.body = isCardAnswer(result) ? result : {};
      },
    }),
    route({
      method: 'POST',
      path: '/api/v1/lark/card',
      guard: larkGuard(o, verifyCardCallback),
      async handler(ctx) {
        const verified = ctx.state.lark as ReturnType<typeof verifyCardCallback>;
        if (verified.kind === 'challenge') {
          ctx.body = { challenge: verified.challenge };
          return;
        }
        const pressed = await once(o, 'card', verified.dedupKey, async () => {
          // The SDK destructures data.headers of a legacy callback and, built without a token,
          // checks nothing in them (verified above): an empty object of ours, never the body's.
          const out = (await cards.invoke({ ...verified.data, headers: {} })) as { answer: CardAnswer } | { error: unknown } | undefined;
          // Only a type the SDK handles itself (app_ticket) gets here without our handler's answer.
          if (!out) throw new InvalidInput('the card callback carries no card action');
          if ('error' in out) throw out.error;
          return out.answer;
        });
        ctx.body = pressed.ran ? pressed.result : {};
      },
    }),
  ];
}

/** LARK_EVENT_MODE=ws: the SDK's long connection feeds the same dispatcher (events and card presses). */
export function startLongConnection(appId: string, appSecret: string, domain: string, dispatcher: lark.EventDispatcher, logger: Logger): { close(): void } {
  // Its connection errors go to our log, summarised like the API client's, not to stdout as bare text.
  const ws = new lark.WSClient({ appId, appSecret, domain, loggerLevel: lark.LoggerLevel.warn, logger: sdkLogger(logger) });
  if (!holdFramesUntilListening(ws)) logger.warn('lark long connection: the SDK WSClient no longer has the member ws-hold-frames wraps (wsConfig.setWSInstance); a frame pushed right at connect may be dropped');
  void ws.start({ eventDispatcher: dispatcher });
  return { close: () => ws.close() };
}
