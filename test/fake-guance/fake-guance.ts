import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A local stand-in for the Guance (观测云) OpenAPI calls a poller makes, shaped as
 * https://docs.guance.com/open-api/ documents them: answers {code, content, errorCode, message,
 * success, traceId}, the key in the DF-API-KEY header.
 *  - GET  /api/v1/channel/quick_list → {content: [{id, name, uuid}]}
 *  - POST /api/v1/issue/list {channelUUID, startTime, endTime, pageIndex?, pageSize?} → the
 *    channel's issues with startTime ≤ createAt ≤ endTime (unix seconds), newest first, one page
 *  - POST /api/v1/issue/reply/create {issueUUID, content, extend} → records the reply
 * Failures on demand with failNext(): a status and body, a raw (non-JSON) body, a delay, or no
 * answer at all.
 */
export interface FakeIssue {
  uuid: string;
  name: string;
  level?: string | number;
  resource?: string;
  description?: string;
  /** Unix seconds. */
  createAt: number;
  channelUUID: string;
}

export interface GuanceCall {
  method: string;
  path: string;
  body: any;
  headers: IncomingHttpHeaders;
  at: number;
}

export interface GuanceFault {
  status?: number;
  body?: unknown;
  /** Sent as is (not JSON-encoded). */
  raw?: string;
  delayMs?: number;
  /** Never answer (the socket stays open until the client gives up). */
  hang?: boolean;
}

export class FakeGuance {
  readonly calls: GuanceCall[] = [];
  readonly issues: FakeIssue[] = [];
  readonly replies: Array<{ issueUUID: string; content: string; extend: unknown }> = [];
  readonly channels = [
    { id: 1, name: 'on-call', uuid: 'chan_oncall0000000000000000000001' },
    { id: 2, name: 'staging', uuid: 'chan_staging000000000000000000002' },
  ];
  /** Answers of issue/list go this many items per page when the request names no pageSize. */
  defaultPageSize = 10;
  url = '';
  private server!: Server;
  private readonly faults: Array<{ key: string; fault: GuanceFault; times: number }> = [];

  constructor(readonly apiKey = 'test-guance-key') {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The next `times` calls to "METHOD /path" get this fault instead. */
  failNext(key: string, fault: GuanceFault, times = 1): void {
    this.faults.push({ key, fault, times });
  }

  /** Adds an issue to the on-call channel (by default created now). */
  addIssue(issue: Partial<FakeIssue> & { name: string }): FakeIssue {
    const full: FakeIssue = {
      uuid: `issue_${randomBytes(12).toString('hex')}`,
      level: 'system_level_1',
      resource: 'svc-api',
      description: `${issue.name} (described)`,
      createAt: Math.floor(Date.now() / 1000),
      channelUUID: this.channels[0]!.uuid,
      ...issue,
    };
    this.issues.push(full);
    return full;
  }

  callsTo(method: string, path: string): GuanceCall[] {
    return this.calls.filter((c) => c.method === method && c.path === path);
  }

  private async handle(req: import('node:http').IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://guance');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: any;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return send(res, 400, fail(400, 'ft.ParamError', 'body is not JSON'));
    }
    const call: GuanceCall = { method: req.method ?? 'GET', path: url.pathname, body, headers: req.headers, at: Date.now() };
    this.calls.push(call);
    const key = `${call.method} ${call.path}`;
    const f = this.faults.find((x) => x.key === key);
    if (f) {
      if (--f.times <= 0) this.faults.splice(this.faults.indexOf(f), 1);
      if (f.fault.hang) return; // the client's deadline ends it
      if (f.fault.delayMs) await new Promise((r) => setTimeout(r, f.fault.delayMs));
      if (res.destroyed) return;
      if (f.fault.raw !== undefined) {
        res.writeHead(f.fault.status ?? 200, { 'content-type': 'application/json' });
        res.end(f.fault.raw);
        return;
      }
      return send(res, f.fault.status ?? 200, f.fault.body ?? ok(null));
    }
    if (req.headers['df-api-key'] !== this.apiKey) return send(res, 401, fail(401, 'ft.AuthenticationFailed', 'DF-API-KEY is missing or not valid'));

    if (key === 'GET /api/v1/channel/quick_list') return send(res, 200, ok(this.channels));
    if (key === 'POST /api/v1/issue/list') {
      const { channelUUID, startTime, endTime } = body ?? {};
      if (typeof channelUUID !== 'string' || typeof startTime !== 'number' || typeof endTime !== 'number') {
        return send(res, 400, fail(400, 'ft.ParamError', 'channelUUID, startTime and endTime are required'));
      }
      const pageIndex = Number(body.pageIndex ?? 1);
      const pageSize = Number(body.pageSize ?? this.defaultPageSize);
      const matching = this.issues
        .filter((i) => i.channelUUID === channelUUID && i.createAt >= startTime && i.createAt <= endTime)
        .sort((a, b) => b.createAt - a.createAt);
      const page = matching.slice((pageIndex - 1) * pageSize, pageIndex * pageSize);
      return send(res, 200, { ...ok(page), pageInfo: { count: page.length, pageIndex, pageSize, totalCount: matching.length } });
    }
    if (key === 'POST /api/v1/issue/reply/create') {
      const { issueUUID, content, extend } = body ?? {};
      if (typeof issueUUID !== 'string' || extend === undefined) return send(res, 400, fail(400, 'ft.ParamError', 'issueUUID and extend are required'));
      if (!this.issues.some((i) => i.uuid === issueUUID)) return send(res, 404, fail(404, 'ft.NotFound', `issue ${issueUUID} not found`));
      this.replies.push({ issueUUID, content, extend });
      return send(res, 200, ok({ uuid: `reply_${randomBytes(8).toString('hex')}`, issueUUID, content }));
    }
    send(res, 404, fail(404, 'ft.RouteNotFound', `no route ${key}`));
  }
}

const traceId = () => randomBytes(8).toString('hex');
const ok = (content: unknown) => ({ code: 200, content, errorCode: '', message: '', success: true, traceId: traceId() });
const fail = (code: number, errorCode: string, message: string) => ({ code, content: null, errorCode, message, success: false, traceId: traceId() });

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export const startFakeGuance = (apiKey?: string) => new FakeGuance(apiKey).start();
