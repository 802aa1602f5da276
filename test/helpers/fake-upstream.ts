import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UpstreamCall {
  path: string;
  body: any;
  headers: IncomingHttpHeaders;
  at: number;
}

export interface UpstreamReply {
  status?: number;
  body?: unknown;
  delayMs?: number;
  headers?: Record<string, string>;
}

export type UpstreamHandler = (call: UpstreamCall, nth: number) => UpstreamReply | Promise<UpstreamReply>;

/** A local HTTP server standing in for an Anycross trigger or a business API. */
export class FakeUpstream {
  readonly calls: UpstreamCall[] = [];
  inFlight = 0;
  maxInFlight = 0;
  url = '';
  private server!: Server;

  constructor(public handler: UpstreamHandler = () => ({ status: 200, body: { ok: true } })) {}

  /** Listens on loopback: 127.0.0.1 by default, or '::1'. */
  async start(host = '127.0.0.1'): Promise<this> {
    this.server = createServer(async (req, res) => {
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      try {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        const call: UpstreamCall = { path: req.url ?? '/', body: text ? JSON.parse(text) : undefined, headers: req.headers, at: Date.now() };
        this.calls.push(call);
        const reply = await this.handler(call, this.calls.length);
        if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
        if (res.destroyed) return;
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
        res.end(JSON.stringify(reply.body ?? { ok: true }));
      } finally {
        this.inFlight--;
      }
    });
    await new Promise<void>((resolve) => this.server.listen(0, host, resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.url = host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
    return this;
  }

  callsFor(recordId: string): UpstreamCall[] {
    return this.calls.filter((c) => c.body?.recordId === recordId);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export const startFakeUpstream = (handler?: UpstreamHandler) => new FakeUpstream(handler).start();
