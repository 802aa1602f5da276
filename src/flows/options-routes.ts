import type { Context } from 'koa';
import { z } from 'zod';
import { NotAuthenticated, NotFound } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
import { parseJsonOrUndefined } from '../json.js';
import { safeEqual } from '../safe-equal.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { FlowRegistry } from './flow-registry.js';
import type { ApprovalFlow } from './flow-schema.js';
import { decryptOptions, encryptOptions } from './options-encryption.js';

/**
 * What Lark POSTs for an approval select widget's "external options" (all fields optional but token).
 * https://open.feishu.cn/document/server-docs/approval-v4/approval/associate-external-options
 */
const optionsRequestSchema = z
  .object({
    user_id: z.string().optional(),
    employee_id: z.string().optional(),
    token: z.string().optional(),
    linkage_params: z.record(z.string(), z.unknown()).optional(),
    page_token: z.string().optional(),
    query: z.string().optional(),
    locale: z.string().optional(),
  })
  .passthrough();
type OptionsRequest = z.infer<typeof optionsRequestSchema>;
type OptionsSource = NonNullable<ApprovalFlow['options']>[string];

const itemsSchema = z.array(z.object({ id: z.string().min(1), text: z.string().min(1) }));

/**
 * The request as sent (JSON body, or query string for GET). With a Key set on the widget the
 * body may come as {"encrypt": "..."}: it is opened with the same Key before the token is read.
 */
function optionsRequest(ctx: Context, source: OptionsSource): OptionsRequest {
  // A JSON body (null or absent: the query string), so never nullish here.
  let body: unknown = ctx.request.jsonBody ?? Object.fromEntries(Object.entries(ctx.query));
  const encrypted = (body as { encrypt?: unknown }).encrypt;
  if (typeof encrypted === 'string' && source.encryptKey) {
    try {
      body = JSON.parse(decryptOptions(encrypted, source.encryptKey));
    } catch {
      throw new NotAuthenticated('options request could not be decrypted with the Key of this options source');
    }
  }
  const parsed = optionsRequestSchema.safeParse(body);
  return parsed.success ? parsed.data : {};
}

/**
 * The `options-token` guard: the request must carry the token the flow declares for this
 * options source, checked before anything is relayed. Only a fixed list may go without a token:
 * the flow schema refuses a source with a url and no token.
 */
function optionsToken(flows: FlowRegistry): Guard {
  return {
    name: 'options-token',
    needsBody: true,
    check(ctx) {
      const uri = ctx.params.uri as string;
      const source = findSource(flows, uri);
      if (!source) throw new NotFound(`no flow declares options "${uri}"`);
      const request = optionsRequest(ctx, source);
      if (source.token !== undefined && !safeEqual(String(request.token ?? ''), source.token)) throw new NotAuthenticated('options token does not match');
      ctx.state.optionsSource = source;
      ctx.state.optionsRequest = request;
    },
  };
}

/**
 * GET|POST /field/:uri — options for approval select widgets fed by an external data source.
 * Lark calls with a 3 s timeout and expects option ids with i18n texts:
 * {code: 0, msg, data: {result: {options: [{id, value: "@i18n@…", isDefault}], i18nResources, hasMore, nextPageToken}}};
 * with a Key, `data.result` is that object encrypted (options-encryption.ts).
 */
export function externalOptionsRoutes(flows: FlowRegistry, upstream: UpstreamClient): Route[] {
  const guard = optionsToken(flows);
  const handler = async (ctx: Context) => {
    const source = ctx.state.optionsSource as OptionsSource;
    const request = ctx.state.optionsRequest as OptionsRequest;
    let items: Array<{ id: string; text: string }>;
    if (source.items) {
      items = source.items;
    } else {
      // The business URL gets Lark's request in the clear (decrypted when it came encrypted).
      const outcome = await upstream.postJson(source.url!, request, {}, source.timeoutMs, 256 * 1024);
      const answer = outcome.kind === 'success' ? itemsSchema.safeParse(parseJsonOrUndefined(outcome.response)) : undefined;
      if (!answer?.success) {
        // Lark shows the message to the user; keep answering its format rather than a bare 502.
        ctx.body = { code: 1, msg: `options source failed: ${outcome.kind === 'success' ? 'answer is not [{id, text}]' : outcome.error}` };
        return;
      }
      items = answer.data;
    }
    const locale = (request.locale ?? 'zh_cn').toLowerCase().replace('-', '_');
    const result = {
      options: items.map((item, i) => ({ id: item.id, value: `@i18n@${i + 1}`, isDefault: false })),
      i18nResources: [{ locale, isDefault: true, texts: Object.fromEntries(items.map((item, i) => [`@i18n@${i + 1}`, item.text])) }],
      hasMore: false,
      nextPageToken: '',
    };
    ctx.body = { code: 0, msg: 'success!', data: { result: source.encryptKey ? encryptOptions(JSON.stringify(result), source.encryptKey) : result } };
  };
  return [route({ method: 'GET', path: '/field/:uri', guard, handler }), route({ method: 'POST', path: '/field/:uri', guard, handler })];
}

function findSource(flows: FlowRegistry, uri: string): OptionsSource | undefined {
  for (const f of flows.all()) {
    const options = (f as ApprovalFlow).options;
    if (options && Object.hasOwn(options, uri)) return options[uri];
  }
  return undefined;
}
