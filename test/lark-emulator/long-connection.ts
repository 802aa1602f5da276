import { randomUUID } from 'node:crypto';
import protobuf from 'protobufjs';
import { WebSocketServer, type WebSocket } from 'ws';
import { larkError, type LarkEmulator } from './emulator.js';

/**
 * Lark's event long connection, as the SDK's WSClient speaks it: it POSTs
 * /callback/ws/endpoint for a ws URL, then exchanges protobuf `pbbp2.Frame`s. Control frames
 * (method 0) carry ping/pong; data frames (method 1) carry events whose payload is the plain
 * event JSON, and the client answers each with the same frame and a `{code, data?}` payload,
 * `data` being the handler's result as base64 JSON: how a card.action.trigger callback gets its
 * toast back over the connection.
 * https://open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/event-subscription-guide/callback-subscription/receive-and-handle-callbacks
 */
const root = protobuf.Root.fromJSON({
  nested: {
    pbbp2: {
      nested: {
        Header: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        Frame: {
          fields: {
            SeqID: { type: 'uint64', id: 1 },
            LogID: { type: 'uint64', id: 2 },
            service: { type: 'int32', id: 3 },
            method: { type: 'int32', id: 4 },
            headers: { rule: 'repeated', type: 'Header', id: 5 },
            payloadEncoding: { type: 'string', id: 6 },
            payloadType: { type: 'string', id: 7 },
            payload: { type: 'bytes', id: 8 },
            LogIDNew: { type: 'string', id: 9 },
          },
        },
      },
    },
  },
});
const Frame = root.lookupType('pbbp2.Frame');

interface FrameData {
  SeqID: number;
  LogID: number;
  service: number;
  method: number;
  headers: Array<{ key: string; value: string }>;
  payload?: Uint8Array;
}

/** The client's answer to a data frame: its status and, when the handler returned something, that value. */
export interface LongConnectionAnswer {
  code: number;
  data?: unknown;
}

const CONTROL = 0;
const DATA = 1;
const SERVICE_ID = 7;

export class LongConnection {
  readonly clients = new Set<WebSocket>();
  readonly endpointCalls: Array<{ AppID?: string }> = [];
  private readonly pending = new Map<string, (answer: LongConnectionAnswer) => void>();
  private readonly onAccept: Array<(client: WebSocket) => void> = [];
  private readonly wss = new WebSocketServer({ noServer: true });

  constructor(emulator: LarkEmulator, apps: Record<string, string>) {
    emulator.route(
      'POST',
      '/callback/ws/endpoint',
      (req) => {
        const { AppID, AppSecret } = (req.body ?? {}) as { AppID?: string; AppSecret?: string };
        this.endpointCalls.push({ AppID });
        if (!AppID || apps[AppID] === undefined || apps[AppID] !== AppSecret) return larkError(200, 1000040343, 'app id or secret is invalid');
        return {
          body: {
            code: 0,
            msg: 'ok',
            data: {
              URL: `${emulator.url.replace('http', 'ws')}/ws?device_id=${randomUUID()}&service_id=${SERVICE_ID}`,
              ClientConfig: { PingInterval: 120, ReconnectCount: -1, ReconnectInterval: 120, ReconnectNonce: 30 },
            },
          },
        };
      },
      { auth: false },
    );
    emulator.server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/ws')) return socket.destroy();
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  /**
   * Pushes an event down the next connection the moment the server accepts it, before the client
   * has said anything: how Lark hands over events that waited while no connection was open.
   */
  pushOnAccept(event: unknown): Promise<LongConnectionAnswer> {
    return new Promise((resolve, reject) => {
      const push = (client: WebSocket) => {
        clearTimeout(timer);
        this.push(client, event).then(resolve, reject);
      };
      const timer = setTimeout(() => {
        this.onAccept.splice(this.onAccept.indexOf(push), 1);
        reject(new Error(`long connection: no connection was accepted within ${PUSH_TIMEOUT_MS} ms to push ${eventTypeOf(event)} on`));
      }, PUSH_TIMEOUT_MS);
      this.onAccept.push(push);
    });
  }

  /** Pushes an event (or a card callback) down the connection; resolves with the client's answer. */
  pushEvent(event: unknown): Promise<LongConnectionAnswer> {
    const client = [...this.clients][0];
    if (!client) return Promise.reject(new Error('no long connection is open'));
    return this.push(client, event);
  }

  private push(client: WebSocket, event: unknown): Promise<LongConnectionAnswer> {
    const messageId = randomUUID();
    const frame: FrameData = {
      SeqID: 1,
      LogID: 1,
      service: SERVICE_ID,
      method: DATA,
      headers: [
        { key: 'type', value: 'event' },
        { key: 'message_id', value: messageId },
        { key: 'sum', value: '1' },
        { key: 'seq', value: '0' },
        { key: 'trace_id', value: randomUUID() },
      ],
      payload: new TextEncoder().encode(JSON.stringify(event)),
    };
    // A frame the client never answers fails the push, naming it, instead of hanging the test.
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(messageId);
        reject(new Error(`long connection: no answer within ${PUSH_TIMEOUT_MS} ms to pushed frame ${messageId} (${eventTypeOf(event)})`));
      }, PUSH_TIMEOUT_MS);
      this.pending.set(messageId, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      client.send(Frame.encode(Frame.fromObject(frame)).finish());
    });
  }

  close(): void {
    for (const c of this.clients) c.terminate();
    this.wss.close();
  }

  private accept(ws: WebSocket): void {
    this.clients.add(ws);
    for (const push of this.onAccept.splice(0)) push(ws);
    ws.on('close', () => this.clients.delete(ws));
    ws.on('message', (data: Buffer) => {
      const frame = Frame.toObject(Frame.decode(data), { longs: Number, bytes: Buffer }) as FrameData;
      const header = (k: string) => frame.headers?.find((h) => h.key === k)?.value;
      if (frame.method === CONTROL && header('type') === 'ping') {
        const pong = { ...frame, headers: [{ key: 'type', value: 'pong' }], payload: new TextEncoder().encode(JSON.stringify({ PingInterval: 120, ReconnectCount: -1, ReconnectInterval: 120, ReconnectNonce: 30 })) };
        ws.send(Frame.encode(Frame.fromObject(pong)).finish());
        return;
      }
      if (frame.method === DATA) {
        const id = header('message_id');
        const resolve = id ? this.pending.get(id) : undefined;
        if (id && resolve) {
          this.pending.delete(id);
          const answer = JSON.parse(Buffer.from(frame.payload ?? []).toString('utf8')) as { code: number; data?: string };
          resolve({ code: answer.code, ...(answer.data !== undefined ? { data: JSON.parse(Buffer.from(answer.data, 'base64').toString('utf8')) } : {}) });
        }
      }
    });
  }
}

const PUSH_TIMEOUT_MS = 10_000;

/** v2 header.event_type, or v1 event.type, for an error message. */
function eventTypeOf(event: unknown): string {
  const e = event as { header?: { event_type?: unknown }; event?: { type?: unknown } } | undefined;
  return String(e?.header?.event_type ?? e?.event?.type ?? 'unknown event');
}
