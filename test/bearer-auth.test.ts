import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerToken } from '../src/http/auth.js';
import { listRoutes, route } from '../src/http/route.js';
import type { Context } from 'koa';
import { requestContext, type RequestContext } from '../src/request-context.js';
import { postJson, servedPerTest, serveRoutes } from './helpers/serve-routes.js';

/** The `bearer` guard on a route that answers who it thinks the caller is. */
const TOKENS = ['first-token-0123456789', 'second-token-0123456789'];
const clientOf = (token: string) => `token:${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;

const whoami = (tokens: string[], enabled = true) =>
  route({ method: 'GET', path: '/whoami', guard: bearerToken({ tokens, enabled }), handler: (ctx) => void (ctx.body = { client: ctx.state.client }) });

const on = servedPerTest(() => serveRoutes([whoami(TOKENS)]));
const none = servedPerTest(() => serveRoutes([whoami([])]));
const off = servedPerTest(() => serveRoutes([whoami([], false)]));

async function ask(server: typeof on, authorization?: string) {
  const s = server.get();
  const res = await fetch(`${s.url}/whoami`, { headers: authorization === undefined ? {} : { authorization } });
  return { status: res.status, body: (await res.json()) as any };
}

describe('bearer guard', () => {
  it('is listed as "bearer"', () => {
    expect(listRoutes([whoami(TOKENS)])).toEqual([{ method: 'GET', path: '/whoami', guard: 'bearer' }]);
  });

  it('refuses before the body is read: a stranger’s oversize body is a 401, not a 413', async () => {
    const s = await serveRoutes([route({ method: 'POST', path: '/upload', guard: bearerToken({ tokens: TOKENS, enabled: true }), handler: (ctx) => void (ctx.status = 204) })], 1024);
    try {
      const big = 'x'.repeat(4096);
      expect((await postJson(`${s.url}/upload`, big, { authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await postJson(`${s.url}/upload`, big, { authorization: `Bearer ${TOKENS[0]}` })).status).toBe(413);
    } finally {
      await s.close();
    }
  });

  it('names the caller by a digest prefix of its token, whichever token it is', async () => {
    expect(await ask(on, `Bearer ${TOKENS[0]}`)).toEqual({ status: 200, body: { client: clientOf(TOKENS[0]!) } });
    expect(await ask(on, `Bearer ${TOKENS[1]}`)).toEqual({ status: 200, body: { client: clientOf(TOKENS[1]!) } });
    expect(clientOf(TOKENS[0]!)).not.toBe(clientOf(TOKENS[1]!));
  });

  it('names the caller in the request context too: the access log, error reports and the work the request starts carry it', () => {
    const checkIn = (enabled: boolean, authorization: string) => {
      const context: RequestContext = { reqId: 'req-1', method: 'GET', path: '/whoami' };
      const ctx = { state: {}, get: (name: string) => (name === 'authorization' ? authorization : '') } as unknown as Context;
      requestContext.run(context, () => bearerToken({ tokens: TOKENS, enabled }).check(ctx));
      return { context: context.client, state: (ctx.state as { client?: string }).client };
    };
    expect(checkIn(true, `Bearer ${TOKENS[1]}`)).toEqual({ context: clientOf(TOKENS[1]!), state: clientOf(TOKENS[1]!) });
    expect(checkIn(false, '')).toEqual({ context: 'anonymous', state: 'anonymous' });
  });

  it('takes the scheme in any case, with one or more spaces before the token and trailing spaces after', async () => {
    for (const header of [`bearer ${TOKENS[0]}`, `BEARER ${TOKENS[0]}`, `Bearer   ${TOKENS[0]}`, `Bearer ${TOKENS[0]}  `]) {
      expect((await ask(on, header)).status, header).toBe(200);
    }
  });

  it('asks for the header when it is missing or not "Bearer <token>"', async () => {
    const askFor = { status: 401, body: { error: { code: 'unauthorized', message: 'send Authorization: Bearer <token>' } } };
    for (const header of [undefined, '', 'Bearer', 'Bearer ', `Basic ${TOKENS[0]}`, `${TOKENS[0]}`, `xBearer ${TOKENS[0]}`, `Bearer${TOKENS[0]}`, `Bearer ${TOKENS[0]} extra`, `Token Bearer ${TOKENS[0]}`]) {
      expect(await ask(on, header), String(header)).toEqual(askFor);
    }
  });

  it('refuses a token that is not configured exactly', async () => {
    const invalid = { status: 401, body: { error: { code: 'unauthorized', message: 'bearer token is not valid' } } };
    for (const token of [`${TOKENS[0]}x`, TOKENS[0]!.slice(0, -1), TOKENS[0]!.toUpperCase(), `${TOKENS[0]},${TOKENS[1]}`, 'x']) {
      expect(await ask(on, `Bearer ${token}`), token).toEqual(invalid);
    }
  });

  it('refuses everything, saying how to fix it, when no token is configured', async () => {
    expect(await ask(none, `Bearer ${TOKENS[0]}`)).toEqual({
      status: 401,
      body: { error: { code: 'unauthorized', message: 'API_TOKENS is not set on the server: set API_TOKENS (or API_AUTH=off behind an allow-listing proxy)' } },
    });
  });

  it('with API_AUTH=off lets everyone through as one "anonymous" client', async () => {
    expect(await ask(off)).toEqual({ status: 200, body: { client: 'anonymous' } });
    expect(await ask(off, 'Bearer anything')).toEqual({ status: 200, body: { client: 'anonymous' } });
  });
});
