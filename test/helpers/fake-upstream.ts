import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UpstreamCall {
  path: string;
  body: any;
  /** The body's bytes as received. */
  raw: Buffer;
  headers: IncomingHttpHeaders;
  at: number;
  /** Set when the caller closed the connection before the answer was complete. */
  cutAt?: number;
}

export interface UpstreamReply {
  status?: number;
  body?: unknown;
  delayMs?: number;
  headers?: Record<string, string>;
  /** Send the status line and headers, then one byte every `everyMs`, `bytes` in all (a slow drip). */
  drip?: { everyMs: number; bytes: number };
  /** Never answer: the call hangs until the caller gives up. */
  hang?: true;
  /** Stream an answer of this many bytes (zeros in JSON-ish chunks), as fast as the socket takes it. */
  streamBytes?: number;
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
        const raw = Buffer.concat(chunks);
        const text = raw.toString('utf8');
        const call: UpstreamCall = { path: req.url ?? '/', body: text ? JSON.parse(text) : undefined, raw, headers: req.headers, at: Date.now() };
        this.calls.push(call);
        res.once('close', () => {
          if (!res.writableFinished) call.cutAt = Date.now();
        });
        const reply = await this.handler(call, this.calls.length);
        if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
        if (reply.hang) {
          await new Promise((r) => res.once('close', r));
          return;
        }
        if (res.destroyed) return;
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
        if (reply.drip) await drip(res, reply.drip);
        else if (reply.streamBytes) await stream(res, reply.streamBytes);
        else res.end(JSON.stringify(reply.body ?? { ok: true }));
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

/** Writes one byte every `everyMs` until `bytes` are out or the caller hangs up. */
async function drip(res: ServerResponse, o: { everyMs: number; bytes: number }): Promise<void> {
  res.flushHeaders();
  for (let i = 0; i < o.bytes && !res.destroyed; i++) {
    await new Promise((r) => setTimeout(r, o.everyMs));
    if (!res.destroyed) res.write(' ');
  }
  if (!res.destroyed) res.end();
}

/** Writes `bytes` bytes in 64 KB chunks, waiting for the socket to drain, until done or the caller hangs up. */
async function stream(res: ServerResponse, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x30);
  for (let sent = 0; sent < bytes && !res.destroyed; sent += chunk.length) {
    if (!res.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.once('drain', done);
        res.once('close', done);
      });
    }
  }
  if (!res.destroyed) res.end();
}

export const startFakeUpstream = (handler?: UpstreamHandler) => new FakeUpstream(handler).start();
