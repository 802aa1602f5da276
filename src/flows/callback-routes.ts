import type { Context } from 'koa';
import { z } from 'zod';
import type { Clock } from '../clock.js';
import { NotAuthenticated } from '../errors.js';
import { route, type Guard, type Route } from '../http/route.js';
import type { ApprovalEngine } from './approval-engine.js';
import { bodySignatureMatches, businessResultSchema, callbackTimestampProblem, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './business-call.js';
import type { FlowRegistry } from './flow-registry.js';
import type { ApprovalFlow, Stage } from './flow-schema.js';

const callbackSchema = businessResultSchema.extend({
  ticket_id: z.string().min(1, 'is required'),
  // Echoed from our call (async stages send it): a callback of an attempt a Retry replaced is refused.
  // null or "" (a client that always writes the field) is the same as leaving it out.
  attempt_id: z.string({ error: 'must be the attempt_id string of our call' }).max(2048).nullish(),
});

/**
 * The `business-hmac` guard: the body must be signed with the secret of a loaded approval flow.
 * It is checked before anything is looked up, so an unsigned caller learns nothing about which
 * tickets exist. The flow whose secret verified is handed to the handler.
 */
export function businessHmac(flows: FlowRegistry, clock: Clock): Guard {
  return {
    name: 'business-hmac',
    needsBody: true,
    check(ctx: Context) {
      const timestamp = ctx.get(TIMESTAMP_HEADER) || undefined;
      const signature = ctx.get(SIGNATURE_HEADER) || undefined;
      const problem = callbackTimestampProblem(timestamp, signature, clock.now());
      if (problem) throw new NotAuthenticated(problem);
      const raw = ctx.request.rawBody ?? Buffer.alloc(0);
      const approvalFlows = flows.all().filter((f): f is ApprovalFlow => f.kind === 'approval');
      // Every flow's secret is tried, so the time taken does not tell which flow matched.
      let signedBy: ApprovalFlow | undefined;
      for (const f of approvalFlows) if (bodySignatureMatches(f.secret, timestamp!, signature!, raw)) signedBy ??= f;
      if (!signedBy) throw new NotAuthenticated('callback signature does not verify');
      ctx.state.signedBy = signedBy;
    },
  };
}

/**
 * Async business results: POST /api/v1/lark/check/callback and /api/v1/lark/execute/callback,
 * signed like our calls (HMAC-SHA256 of "<timestamp>.<raw body>" with the flow's secret).
 */
export function businessCallbackRoutes(engine: Pick<ApprovalEngine, 'acceptCallback'>, flows: FlowRegistry, clock: Clock): Route[] {
  const guard = businessHmac(flows, clock);
  const forStage = (stage: Stage) =>
    route({
      method: 'POST',
      path: `/api/v1/lark/${stage}/callback`,
      guard,
      body: callbackSchema,
      async handler(ctx, body) {
        await engine.acceptCallback(stage, body.ticket_id, ctx.state.signedBy as ApprovalFlow, body, body.attempt_id || undefined);
        ctx.body = { status: 'accepted', ticket_id: body.ticket_id, stage };
      },
    });
  return [forStage('check'), forStage('execute')];
}
