import { timingSafeEqual } from 'node:crypto';
import { Router } from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { NotFound, Unauthorized } from '../errors.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { FlowRegistry } from './flow-registry.js';
import type { ApprovalFlow } from './flow-schema.js';

/** What Lark POSTs for an approval select widget's "external options" (all fields optional). */
const optionsRequestSchema = z
  .object({
    user_id: z.string().optional(),
    employee_id: z.string().optional(),
    token: z.string().optional(),
    linkage_params: z.record(z.string(), z.unknown()).optional(),
    page_token: z.string().optional(),
    locale: z.string().optional(),
  })
  .passthrough();

const itemsSchema = z.array(z.object({ id: z.string().min(1), text: z.string().min(1) }));

/**
 * GET|POST /field/:uri — options for approval select widgets fed by an external data source.
 * Lark calls with a 3 s timeout and expects option ids with i18n texts:
 * {code: 0, msg, data: {result: {options: [{id, value: "@i18n@…", isDefault}], i18nResources, hasMore, nextPageToken}}}.
 */
export function externalOptionsRoutes(flows: FlowRegistry, upstream: UpstreamClient): Router {
  const router = new Router();
  const handle = async (ctx: Context) => {
    const uri = ctx.params.uri as string;
    const source = findSource(flows, uri);
    if (!source) throw new NotFound(`no flow declares options "${uri}"`);
    const parsed = optionsRequestSchema.safeParse(ctx.request.jsonBody ?? Object.fromEntries(Object.entries(ctx.query)));
    const request = parsed.success ? parsed.data : {};
    if (source.token !== undefined) {
      const a = Buffer.from(String(request.token ?? ''));
      const b = Buffer.from(source.token);
      if (a.length !== b.length || !timingSafeEqual(a, b)) throw new Unauthorized('options token does not match');
    }
    let items: Array<{ id: string; text: string }>;
    if ('items' in source) {
      items = source.items;
    } else {
      const outcome = await upstream.postJson(source.url, request, {}, source.timeoutMs, 256 * 1024);
      const answer = outcome.kind === 'success' ? itemsSchema.safeParse(safeJson(outcome.response)) : undefined;
      if (!answer?.success) {
        // Lark shows the message to the user; keep answering its format rather than a bare 502.
        ctx.body = { code: 1, msg: `options source failed: ${outcome.kind === 'success' ? 'answer is not [{id, text}]' : outcome.error}` };
        return;
      }
      items = answer.data;
    }
    const locale = (request.locale ?? 'zh_cn').toLowerCase().replace('-', '_');
    ctx.body = {
      code: 0,
      msg: 'success!',
      data: {
        result: {
          options: items.map((item, i) => ({ id: item.id, value: `@i18n@${i + 1}`, isDefault: false })),
          i18nResources: [{ locale, isDefault: true, texts: Object.fromEntries(items.map((item, i) => [`@i18n@${i + 1}`, item.text])) }],
          hasMore: false,
          nextPageToken: '',
        },
      },
    };
  };
  router.get('/field/:uri', handle);
  router.post('/field/:uri', handle);
  return router;
}

function findSource(flows: FlowRegistry, uri: string) {
  for (const f of flows.all()) {
    const source = (f as ApprovalFlow).options?.[uri];
    if (source) return source;
  }
  return undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
