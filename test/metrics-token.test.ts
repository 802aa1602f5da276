import { describe, expect, it } from 'vitest';
import { listRoutes, route } from '../src/http/route.js';
import { metricsRoutes, metricsToken } from '../src/metrics/metrics-routes.js';
import { postJson, servedPerTest, serveRoutes } from './helpers/serve-routes.js';

/** GET /metrics behind the metrics-token guard, on a bare Koa app on loopback. */
const TOKEN = 'metrics-token-0123456789';
const TEXT = '# HELP up 1 when up\n# TYPE up gauge\nup 1\n';
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const scraper = { scrape: async () => ({ contentType: CONTENT_TYPE, text: TEXT }) };

const on = servedPerTest(() => serveRoutes(metricsRoutes(scraper, metricsToken(TOKEN))));
const unset = servedPerTest(() => serveRoutes(metricsRoutes(scraper, metricsToken(undefined))));
const empty = servedPerTest(() => serveRoutes(metricsRoutes(scraper, metricsToken(''))));
const notCollected = servedPerTest(() => serveRoutes(metricsRoutes({}, metricsToken(TOKEN))));

async function scrape(server: typeof on, authorization?: string) {
  const res = await fetch(`${server.get().url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body: res.status === 200 ? text : JSON.parse(text) };
}

const unauthorized = (message: string) => ({ status: 401, type: 'application/json; charset=utf-8', body: { error: { code: 'unauthorized', message } } });

describe('GET /metrics and the metrics-token guard', () => {
  it('is one route, GET /metrics, behind "metrics-token"', () => {
    expect(listRoutes(metricsRoutes(scraper, metricsToken(TOKEN)))).toEqual([{ method: 'GET', path: '/metrics', guard: 'metrics-token' }]);
  });

  it('serves the exposition with its content type to the metrics token', async () => {
    expect(await scrape(on, `Bearer ${TOKEN}`)).toEqual({ status: 200, type: CONTENT_TYPE, body: TEXT });
  });

  it('takes the scheme in any case, one or more spaces before the token and trailing spaces after', async () => {
    for (const header of [`bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Bearer   ${TOKEN}`, `Bearer ${TOKEN}  `, `Bearer ${TOKEN} `]) {
      expect(await scrape(on, header), header).toEqual({ status: 200, type: CONTENT_TYPE, body: TEXT });
    }
  });

  it('asks for the header when it is missing or not "Bearer <token>"', async () => {
    for (const header of [undefined, '', 'Bearer', 'Bearer ', `Basic ${TOKEN}`, TOKEN, `xBearer ${TOKEN}`, `Bearer${TOKEN}`, `Bearer ${TOKEN} extra`, `Bearer ${TOKEN}\tx`, `Token Bearer ${TOKEN}`]) {
      expect(await scrape(on, header), String(header)).toEqual(unauthorized('send Authorization: Bearer <METRICS_TOKEN>'));
    }
  });

  it('refuses any other token, an API token included', async () => {
    for (const token of [`${TOKEN}x`, TOKEN.slice(0, -1), TOKEN.toUpperCase(), 'api-token-0123456789', 'x']) {
      expect(await scrape(on, `Bearer ${token}`), token).toEqual(unauthorized('metrics token is not valid'));
    }
  });

  it('refuses every scrape, saying how to turn metrics on, when METRICS_TOKEN is not set', async () => {
    const off = unauthorized('metrics are off: set METRICS_TOKEN on the server to serve /metrics');
    expect(await scrape(unset, `Bearer ${TOKEN}`)).toEqual(off);
    expect(await scrape(unset)).toEqual(off);
    expect(await scrape(empty, 'Bearer ')).toEqual(off);
    expect(await scrape(empty, 'Bearer x')).toEqual(off);
  });

  it('answers 404 to the metrics token when this process collects no metrics', async () => {
    const res = await scrape(notCollected, `Bearer ${TOKEN}`);
    expect(res).toEqual({ status: 404, type: 'application/json; charset=utf-8', body: { error: { code: 'not_found', message: 'metrics are not collected in this process' } } });
    expect((await scrape(notCollected, 'Bearer wrong')).status).toBe(401);
  });

  it('refuses before a body is read: a stranger’s oversize body is a 401, not a 413', async () => {
    const s = await serveRoutes([route({ method: 'POST', path: '/upload', guard: metricsToken(TOKEN), handler: (ctx) => void (ctx.status = 204) })], 1024);
    try {
      const big = 'x'.repeat(4096);
      expect((await postJson(`${s.url}/upload`, big, { authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await postJson(`${s.url}/upload`, big, { authorization: `Bearer ${TOKEN}` })).status).toBe(413);
    } finally {
      await s.close();
    }
  });
});
