import { createHmac } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Local stand-ins for the DingTalk and WeCom group robots, checking what those platforms check:
 *  - DingTalk POST /robot/send?access_token=…[&timestamp=…&sign=…]: with a secret, timestamp (ms)
 *    within an hour and sign = base64(HMAC-SHA256 keyed with the secret over timestamp + "\n" +
 *    secret) (https://open.dingtalk.com/document/group/custom-robot-access); {errcode, errmsg}.
 *  - WeCom POST /cgi-bin/webhook/send?key=…: markdown.content at most 4,096 bytes
 *    (https://developer.work.weixin.qq.com/document/path/91770); {errcode, errmsg}.
 */
export interface RobotMessage {
  platform: 'dingtalk' | 'wecom';
  body: any;
  query: Record<string, string>;
}

export class FakeRobots {
  readonly messages: RobotMessage[] = [];
  url = '';
  private server!: Server;
  /** The next answers (per platform) replace the normal one. */
  readonly nextAnswers: Array<{ platform: 'dingtalk' | 'wecom'; answer: unknown }> = [];

  constructor(
    readonly dingtalk: { accessToken: string; secret?: string },
    readonly wecom: { key: string },
  ) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://robots');
        const query = Object.fromEntries(url.searchParams);
        let body: any;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return send(res, { errcode: 40001, errmsg: 'invalid json' });
        }
        if (req.method === 'POST' && url.pathname === '/robot/send') return send(res, this.dingtalkAnswer(query, body));
        if (req.method === 'POST' && url.pathname === '/cgi-bin/webhook/send') return send(res, this.wecomAnswer(query, body));
        res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private override(platform: 'dingtalk' | 'wecom'): unknown {
    const i = this.nextAnswers.findIndex((a) => a.platform === platform);
    return i < 0 ? undefined : this.nextAnswers.splice(i, 1)[0]!.answer;
  }

  private dingtalkAnswer(query: Record<string, string>, body: any): unknown {
    if (query.access_token !== this.dingtalk.accessToken) return { errcode: 300001, errmsg: 'token is not exist' };
    if (this.dingtalk.secret !== undefined) {
      const ts = Number(query.timestamp);
      const expected = createHmac('sha256', this.dingtalk.secret).update(`${query.timestamp}\n${this.dingtalk.secret}`).digest('base64');
      if (!Number.isInteger(ts) || Math.abs(Date.now() - ts) > 3_600_000 || query.sign !== expected) {
        return { errcode: 310000, errmsg: 'sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]' };
      }
    }
    const forced = this.override('dingtalk');
    if (forced) return forced;
    if (body?.msgtype !== 'markdown' || typeof body.markdown?.title !== 'string' || typeof body.markdown?.text !== 'string') {
      return { errcode: 40035, errmsg: 'missing parameter markdown.title or markdown.text' };
    }
    this.messages.push({ platform: 'dingtalk', body, query });
    return { errcode: 0, errmsg: 'ok' };
  }

  private wecomAnswer(query: Record<string, string>, body: any): unknown {
    if (query.key !== this.wecom.key) return { errcode: 93000, errmsg: 'invalid webhook url' };
    const forced = this.override('wecom');
    if (forced) return forced;
    if (body?.msgtype !== 'markdown' || typeof body.markdown?.content !== 'string') return { errcode: 40008, errmsg: 'invalid message type' };
    if (Buffer.byteLength(body.markdown.content) > 4096) return { errcode: 40058, errmsg: 'markdown.content exceed max length 4096' };
    this.messages.push({ platform: 'wecom', body, query });
    return { errcode: 0, errmsg: 'ok' };
  }
}

function send(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
