import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export interface Envelope {
  /** The body as received (after gzip), to look for what must not be in it. */
  raw: string;
  headers: Record<string, unknown>;
  items: Array<{ header: { type?: string }; payload: any }>;
}

/**
 * A Sentry ingest endpoint on loopback: the DSN's host. The SDK POSTs envelopes to
 * /api/<project>/envelope/ — newline-separated JSON: envelope header, then item header and
 * payload pairs (https://develop.sentry.dev/sdk/data-model/envelopes/).
 */
export class FakeSentry {
  readonly envelopes: Envelope[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const raw = body.toString('utf8');
        if (/^\/api\/\d+\/envelope\/?$/.test(new URL(req.url ?? '/', 'http://x').pathname)) this.envelopes.push(parseEnvelope(raw));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** A DSN pointing at this endpoint. */
  dsn(publicKey = 'fakepublickey0123', project = 42): string {
    return `http://${publicKey}@${this.url.slice('http://'.length)}/${project}`;
  }

  /** The error events received so far (items of type "event"). */
  events(): any[] {
    return this.envelopes.flatMap((e) => e.items.filter((i) => i.header.type === 'event').map((i) => i.payload));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function parseEnvelope(raw: string): Envelope {
  const lines = raw.split('\n');
  const headers = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  const items: Envelope['items'] = [];
  for (let i = 1; i + 1 < lines.length; i += 2) {
    if (!lines[i]) continue;
    const header = JSON.parse(lines[i]!) as { type?: string };
    let payload: unknown = lines[i + 1];
    try {
      payload = JSON.parse(lines[i + 1]!);
    } catch {
      // attachments are not JSON
    }
    items.push({ header, payload });
  }
  return { raw, headers, items };
}

export const startFakeSentry = () => new FakeSentry().start();
