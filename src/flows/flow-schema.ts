import { z } from 'zod';

/** The flow file format. Types, validation and flows/flow.schema.json all come from here. */

export const FIELD_TYPES = ['string', 'number', 'boolean', 'date', 'datetime', 'enum', 'strings', 'users', 'attachments', 'table'] as const;

export interface FieldSpec {
  widget: string;
  type: (typeof FIELD_TYPES)[number];
  required?: boolean;
  map?: Record<string, string | number | boolean>;
  default?: unknown;
  fields?: Record<string, FieldSpec>;
}

export const fieldSpecSchema: z.ZodType<FieldSpec> = z.lazy(() =>
  z
    .object({
      widget: z.string().min(1).describe("The form widget's name, id or custom_id"),
      type: z.enum(FIELD_TYPES).describe('How the widget value is turned into the API value'),
      required: z.boolean().optional().describe('Reject the request when the widget is missing or empty'),
      map: z
        .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
        .optional()
        .describe('enum/strings: option text (or external option id) → API value'),
      default: z.unknown().optional().describe('Value used when the widget is missing or empty'),
      fields: z.record(z.string(), fieldSpecSchema).optional().describe('table: the columns of each row'),
    })
    .strict()
    .superRefine((f, ctx) => {
      if (f.type === 'enum' && !f.map) ctx.addIssue({ code: 'custom', path: ['map'], message: 'an enum field needs a map of option → value' });
      if (f.type === 'table' && !f.fields) ctx.addIssue({ code: 'custom', path: ['fields'], message: 'a table field needs fields for its columns' });
    }),
);

export const stageSchema = z
  .object({
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).describe('Business API endpoint for this stage'),
    mode: z.enum(['sync', 'async']).default('sync').describe('sync: the answer carries the result; async: the result comes to the callback URL'),
    timeoutMs: z.number().int().min(100).max(120_000).default(10_000).describe('Per-call timeout'),
    retries: z.number().int().min(0).max(10).default(2).describe('Extra tries on timeouts, network errors, 5xx and malformed answers'),
    callbackTimeoutMs: z
      .number()
      .int()
      .min(1_000)
      .max(7 * 24 * 3_600_000)
      .default(3_600_000)
      .describe('async: reject when no callback arrives within this time'),
  })
  .strict();

const optionItem = z.object({ id: z.string().min(1), text: z.string().min(1) }).strict();
const optionsToken = z.string().min(1).describe('The Token set on the widget in the approval admin: Lark sends it with every request');
const optionsKey = z
  .string()
  .min(1)
  .optional()
  .describe('The Key set on the widget in the approval admin: the answer is then encrypted as Lark documents; write "${env:NAME}"');
export const optionsSourceSchema = z
  .object({
    token: optionsToken.optional(),
    encryptKey: optionsKey,
    items: z.array(optionItem).min(1).optional().describe('A fixed list of options'),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional().describe("Where Lark's request is relayed; answers [{id, text}]"),
    timeoutMs: z.number().int().min(100).max(2_500).default(2_000).describe('url: Lark waits 3 s in all'),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (!o.items === !o.url) ctx.addIssue({ code: 'custom', path: [], message: 'an options source needs either items or url' });
    // Without a token anyone could make us call the business URL.
    if (o.url && o.token === undefined) ctx.addIssue({ code: 'custom', path: ['token'], message: 'an options source with a url needs a token (the Token set on the widget in the approval admin)' });
  });

export const approvalFlowSchema = z
  .object({
    $schema: z.string().optional(),
    kind: z.literal('approval'),
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, - and _ (at most 64)'),
    name: z.string().min(1).max(200),
    approvalCode: z.string().min(1).describe('The Lark approval definition code'),
    nodes: z
      .object({ check: z.string().min(1).optional(), execute: z.string().min(1).optional() })
      .strict()
      .optional()
      .describe("Node names or custom node ids; default check_node / execute_node for each stage the flow has"),
    fields: z.record(z.string(), fieldSpecSchema).default({}).describe('API field name → how to read it from the form'),
    check: stageSchema.optional(),
    execute: stageSchema.optional(),
    secret: z.string().min(16, 'must be at least 16 characters; use "${env:NAME}"').describe('HMAC key for business calls and callbacks'),
    notify: z
      .object({
        chatId: z.string().min(1),
        template: z.string().regex(/^[A-Za-z0-9_-]+$/).default('approval-progress'),
        retryBy: z.array(z.string().min(1)).default([]).describe('Open ids allowed to press Retry'),
      })
      .strict()
      .optional(),
    options: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), optionsSourceSchema).optional().describe('External options served at /field/<uri>'),
  })
  .strict()
  .superRefine((f, ctx) => {
    if (!f.check && !f.execute) ctx.addIssue({ code: 'custom', path: ['check'], message: 'a flow needs check, execute or both' });
  })
  .transform((f) => ({
    ...f,
    nodes: {
      ...(f.check ? { check: f.nodes?.check ?? 'check_node' } : {}),
      ...(f.execute ? { execute: f.nodes?.execute ?? 'execute_node' } : {}),
    },
  }));

export const flowFileSchema = z.discriminatedUnion('kind', [approvalFlowSchema]);

export type ApprovalFlow = z.output<typeof approvalFlowSchema>;
export type StageSpec = z.output<typeof stageSchema>;
export type Stage = 'check' | 'execute';
export type Flow = z.output<typeof flowFileSchema>;
