import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Lark Open API calls lark-bridge makes. The real
 * @larksuiteoapi/node-sdk talks to it through its `domain` option. Answers follow Lark's
 * documented shapes: `{code, msg, data}`, HTTP 200 with code 0 on success, error codes with the
 * HTTP status Lark uses. Every call is recorded so tests can assert on what was sent.
 *
 * Extend it by registering more routes with `route()` (later issues add approval and card APIs).
 */
export interface RecordedCall {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  at: number;
}

export interface Reply {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface Request {
  method: string;
  path: string;
  query: Record<string, string>;
  params: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  /** The app id the bearer token was issued to; undefined for an unauthenticated call. */
  appId?: string;
  /** Size of the request body as received, in bytes. */
  bytes: number;
}

type Handler = (req: Request) => Reply | Promise<Reply>;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
  auth: boolean;
}

export interface StoredMessage {
  message_id: string;
  chat_id: string;
  msg_type: string;
  content: string;
  uuid?: string;
  root_id?: string;
  parent_id?: string;
  /** Set on a thread's root and on every message in the thread (`omt_…`). */
  thread_id?: string;
  /** Bookkeeping (not a Lark field): the message the reply API was called on. */
  replied_to?: string;
  /** Who sent it: the app (through the API) or a person (chat.ts `userSays`). */
  sender?: { open_id: string; sender_type: 'user' };
  create_time: string;
  update_time: string;
  updated: boolean;
}

export interface EmulatorOptions {
  apps: Record<string, string>; // app id → app secret
  /** Chats the bot is in; any `oc_` chat when omitted. */
  chats?: string[];
  tokenTtlSec?: number;
  /** The app's bot as GET /open-apis/bot/v3/info shows it. */
  bot?: { openId: string; name: string };
}

export const EMULATED_BOT = { openId: 'ou_emulated_bot_0001', name: 'lark-bridge bot' };

export const ok = (data?: unknown): Reply => ({ body: { code: 0, msg: 'success', ...(data !== undefined ? { data } : {}) } });
export const larkError = (status: number, code: number, msg: string, headers?: Record<string, string>): Reply => ({
  status,
  body: { code, msg },
  headers,
});

export class LarkEmulator {
  readonly calls: RecordedCall[] = [];
  readonly messages = new Map<string, StoredMessage>();
  private readonly tokens = new Map<string, { appId: string; expiresAt: number }>();
  private readonly routes: Route[] = [];
  private readonly faults: Array<{ key: string; reply: Reply; times: number }> = [];
  server!: Server;
  url = '';

  constructor(private readonly options: EmulatorOptions) {
    this.registerAuth();
    this.registerMessages();
    this.registerBotInfo();
    this.registerMessageReply();
  }

  get bot(): { openId: string; name: string } {
    return this.options.bot ?? EMULATED_BOT;
  }

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Registers a handler for `METHOD /open-apis/path/:param`. */
  route(method: string, path: string, handler: Handler, options: { auth?: boolean } = {}): void {
    const keys: string[] = [];
    const pattern = new RegExp(
      `^${path.replace(/:([A-Za-z_]+)/g, (_, k: string) => {
        keys.push(k);
        return '([^/]+)';
      })}$`,
    );
    this.routes.unshift({ method, pattern, keys, handler, auth: options.auth ?? true });
  }

  /** The next `times` calls to `METHOD /path` (path without query) get this reply instead. */
  failNext(key: string, reply: Reply, times = 1): void {
    this.faults.push({ key, reply, times });
  }

  /** Every tenant token issued so far stops working (as after an app secret reset): calls with one answer 99991663. */
  invalidateTokens(): void {
    this.tokens.clear();
  }

  /** Every tenant token issued so far is past its expiry: calls with one answer 99991663, as Lark does. */
  expireTokens(): void {
    for (const t of this.tokens.values()) t.expiresAt = 0;
  }

  callsTo(method: string, pathPrefix: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && c.path.startsWith(pathPrefix));
  }

  private registerAuth(): void {
    // https://open.feishu.cn/document/server-docs/authentication-management/access-token/tenant_access_token_internal
    this.route(
      'POST',
      '/open-apis/auth/v3/tenant_access_token/internal',
      (req) => {
        const { app_id, app_secret } = (req.body ?? {}) as { app_id?: string; app_secret?: string };
        if (!app_id || this.options.apps[app_id] === undefined) return larkError(400, 10003, 'invalid param: app_id');
        if (this.options.apps[app_id] !== app_secret) return larkError(400, 10014, 'app secret invalid');
        const token = `t-${randomBytes(16).toString('hex')}`;
        const expire = this.options.tokenTtlSec ?? 7200;
        this.tokens.set(token, { appId: app_id, expiresAt: Date.now() + expire * 1000 });
        return { body: { code: 0, msg: 'ok', tenant_access_token: token, expire } };
      },
      { auth: false },
    );
  }

  private registerMessages(): void {
    // https://open.feishu.cn/document/server-docs/im-v1/message/create
    this.route('POST', '/open-apis/im/v1/messages', (req) => {
      const idType = req.query.receive_id_type;
      if (!['open_id', 'user_id', 'union_id', 'email', 'chat_id'].includes(idType ?? '')) {
        return larkError(400, 99992402, 'field validation failed: receive_id_type');
      }
      const { receive_id, msg_type, content, uuid } = (req.body ?? {}) as Record<string, unknown>;
      // Same page: the request body of a text message may be at most 150 KB, of a post or card 30 KB.
      const limit = msg_type === 'text' ? 150 * 1024 : msg_type === 'post' || msg_type === 'interactive' ? 30 * 1024 : Infinity;
      if (req.bytes > limit) return larkError(400, 230025, 'The length of the message content reaches its limit.');
      if (typeof receive_id !== 'string' || !receive_id) return larkError(400, 99992402, 'field validation failed: receive_id');
      if (typeof msg_type !== 'string') return larkError(400, 99992402, 'field validation failed: msg_type');
      if (typeof content !== 'string') return larkError(400, 99992402, 'field validation failed: content');
      if (uuid !== undefined && (typeof uuid !== 'string' || uuid.length > 50)) return larkError(400, 99992402, 'field validation failed: uuid'); // at most 50 characters
      const problem = validateContent(msg_type, content);
      if (problem) return larkError(400, 230001, `Your request contains an invalid request parameter, ext=${problem}`);
      if (idType === 'chat_id' && !this.inChat(receive_id)) return larkError(400, 230002, 'Bot/User can NOT be out of the chat.');
      if (typeof uuid === 'string') {
        const existing = [...this.messages.values()].find((m) => m.uuid === uuid);
        if (existing) return ok(this.messageData(existing, req.appId!));
      }
      const now = String(Date.now());
      const message: StoredMessage = {
        message_id: `om_${randomBytes(16).toString('hex')}`,
        chat_id: idType === 'chat_id' ? receive_id : `oc_p2p_${receive_id}`,
        msg_type,
        content,
        ...(typeof uuid === 'string' ? { uuid } : {}),
        create_time: now,
        update_time: now,
        updated: false,
      };
      this.messages.set(message.message_id, message);
      return ok(this.messageData(message, req.appId!));
    });
  }

  /**
   * GET /open-apis/bot/v3/info: no scope needed; `bot` at the top level, not under `data`.
   * https://open.feishu.cn/document/ukTMukTMukTM/uAjMxEjLwITMx4CMyETM
   */
  private registerBotInfo(): void {
    this.route('GET', '/open-apis/bot/v3/info', () => ({
      body: { code: 0, msg: 'ok', bot: { activate_status: 2, app_name: this.bot.name, avatar_url: '', ip_white_list: [], open_id: this.bot.openId } },
    }));
  }

  /**
   * POST /open-apis/im/v1/messages/:message_id/reply. With reply_in_thread the reply opens (or
   * joins) the message's thread; a message already in a thread is always answered in it. The bot
   * must be in the chat (230002); the same uuid within the hour returns the first reply.
   * https://open.feishu.cn/document/server-docs/im-v1/message/reply
   */
  registerMessageReply(): void {
    this.route('POST', '/open-apis/im/v1/messages/:message_id/reply', (req) => {
      const { msg_type, content, uuid, reply_in_thread } = (req.body ?? {}) as Record<string, unknown>;
      if (typeof msg_type !== 'string') return larkError(400, 99992402, 'field validation failed: msg_type');
      if (typeof content !== 'string') return larkError(400, 99992402, 'field validation failed: content');
      if (reply_in_thread !== undefined && typeof reply_in_thread !== 'boolean') return larkError(400, 99992402, 'field validation failed: reply_in_thread');
      if (uuid !== undefined && (typeof uuid !== 'string' || uuid.length > 50)) return larkError(400, 99992402, 'field validation failed: uuid');
      const problem = validateContent(msg_type, content);
      if (problem) return larkError(400, 230001, `Your request contains an invalid request parameter, ext=${problem}`);
      const parent = this.messages.get(req.params.message_id!);
      if (!parent) return larkError(400, 230001, 'Your request contains an invalid request parameter, ext=message not found');
      if (!this.inChat(parent.chat_id)) return larkError(400, 230002, 'Bot/User can NOT be out of the chat.');
      if (typeof uuid === 'string') {
        const existing = [...this.messages.values()].find((m) => m.uuid === uuid);
        if (existing) return ok(this.messageData(existing, req.appId!));
      }
      const reply = this.storeReply(parent, { msg_type, content, replied_to: parent.message_id, ...(typeof uuid === 'string' ? { uuid } : {}) }, reply_in_thread === true);
      return ok(this.messageData(reply, req.appId!));
    });
  }

  /** Stores a reply to `parent` the way Lark links it: root, parent and (in a thread) thread ids. */
  storeReply(parent: StoredMessage, m: Pick<StoredMessage, 'msg_type' | 'content' | 'uuid' | 'sender' | 'replied_to'>, inThread: boolean): StoredMessage {
    const root = this.messages.get(parent.root_id ?? parent.message_id) ?? parent;
    let threadId = parent.thread_id;
    if (!threadId && inThread) threadId = root.thread_id = `omt_${randomBytes(8).toString('hex')}`;
    const now = String(Date.now());
    const reply: StoredMessage = {
      ...m,
      message_id: `om_${randomBytes(16).toString('hex')}`,
      chat_id: parent.chat_id,
      root_id: root.message_id,
      // In a thread every reply answers the root.
      parent_id: threadId ? root.message_id : parent.message_id,
      ...(threadId ? { thread_id: threadId } : {}),
      create_time: now,
      update_time: now,
      updated: false,
    };
    this.messages.set(reply.message_id, reply);
    return reply;
  }

  /** Messages the app sent through the reply API on `messageId`, oldest first. */
  repliesTo(messageId: string): StoredMessage[] {
    return [...this.messages.values()].filter((m) => m.replied_to === messageId);
  }

  messageData(m: StoredMessage, appId: string) {
    return {
      message_id: m.message_id,
      ...(m.root_id ? { root_id: m.root_id, parent_id: m.parent_id } : {}),
      ...(m.thread_id ? { thread_id: m.thread_id } : {}),
      msg_type: m.msg_type,
      create_time: m.create_time,
      update_time: m.update_time,
      deleted: false,
      updated: m.updated,
      chat_id: m.chat_id,
      sender: { id: appId, id_type: 'app_id', sender_type: 'app', tenant_key: 'tenant-emulated' },
      body: { content: m.content },
    };
  }

  private inChat(chatId: string): boolean {
    return this.options.chats ? this.options.chats.includes(chatId) : chatId.startsWith('oc_');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const bytes = chunks.reduce((n, c) => n + c.length, 0);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    if (raw) {
      try {
        body = JSON.parse(raw);
      } catch {
        return send(res, larkError(400, 9499, 'Bad Request: body is not JSON'));
      }
    }
    const query = Object.fromEntries(url.searchParams);
    const call: RecordedCall = { method: req.method ?? 'GET', path: url.pathname, query, headers: req.headers, body, at: Date.now() };
    this.calls.push(call);

    const key = `${call.method} ${call.path}`;
    const fault = this.faults.find((f) => f.key === key);
    if (fault) {
      if (--fault.times <= 0) this.faults.splice(this.faults.indexOf(fault), 1);
      return send(res, fault.reply);
    }

    for (const route of this.routes) {
      if (route.method !== call.method) continue;
      const m = route.pattern.exec(call.path);
      if (!m) continue;
      let appId: string | undefined;
      if (route.auth) {
        const token = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
        if (!token) return send(res, larkError(400, 99991661, 'Missing access token for authorization. Please make a request with token attached.'));
        const t = this.tokens.get(token);
        if (!t || t.expiresAt < Date.now()) {
          return send(res, larkError(400, 99991663, 'Invalid access token for authorization. Please make a request with token attached.'));
        }
        appId = t.appId;
      }
      const params = Object.fromEntries(route.keys.map((k, i) => [k, decodeURIComponent(m[i + 1]!)]));
      try {
        return send(res, await route.handler({ method: call.method, path: call.path, query, params, headers: req.headers, body, appId, bytes }));
      } catch (err) {
        return send(res, larkError(500, 1, `emulator handler failed: ${(err as Error).message}`));
      }
    }
    send(res, larkError(404, 404, `emulator: no route for ${key}`));
  }
}

function send(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status ?? 200, { 'content-type': 'application/json; charset=utf-8', ...reply.headers });
  res.end(JSON.stringify(reply.body));
}

/** Checks message content the way Lark does for the types we send; returns a problem or null. */
function validateContent(msgType: string, content: string): string | null {
  let parsed: any;
  try {
    parsed = JSON.parse(content);
  } catch {
    return 'content is not a JSON string';
  }
  if (msgType === 'text') return typeof parsed?.text === 'string' ? null : 'text content needs "text"';
  if (msgType === 'post') {
    const locales = Object.values(parsed ?? {}) as any[];
    if (locales.length === 0) return 'post content needs a locale such as zh_cn';
    for (const l of locales) {
      if (!Array.isArray(l?.content)) return 'post locale needs a content array';
      for (const para of l.content) {
        if (!Array.isArray(para)) return 'post paragraphs must be arrays';
        for (const el of para) {
          if (el?.tag === 'text' && typeof el.text !== 'string') return 'text element needs "text"';
          if (el?.tag === 'at' && typeof el.user_id !== 'string') return 'at element needs "user_id"';
        }
      }
    }
    return null;
  }
  if (msgType === 'interactive') {
    return parsed && typeof parsed === 'object' ? null : 'card content must be an object';
  }
  return null;
}

export async function startLarkEmulator(options: EmulatorOptions): Promise<LarkEmulator> {
  return new LarkEmulator(options).start();
}
