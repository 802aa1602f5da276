import { Router } from '@koa/router';
import { z } from 'zod';
import type { Clock } from '../clock.js';
import { BadRequest, NotFound } from '../errors.js';
import { parseJsonBody } from '../http/body.js';
import type { ApprovalEngine } from './approval-engine.js';
import { businessResultSchema, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyBodySignature } from './business-call.js';
import type { FlowRegistry } from './flow-registry.js';

const callbackSchema = businessResultSchema.extend({ ticket_id: z.string().min(1, 'is required') });

/**
 * Async business results: POST /api/v1/lark/check/callback and /api/v1/lark/execute/callback,
 * signed like our calls (HMAC-SHA256 of "<timestamp>.<raw body>" with the flow's secret).
 */
export function businessCallbackRoutes(engine: ApprovalEngine, flows: FlowRegistry, clock: Clock): Router {
  const router = new Router();
  router.post('/api/v1/lark/:stage/callback', async (ctx) => {
    const stage = ctx.params.stage;
    if (stage !== 'check' && stage !== 'execute') throw new NotFound(`no callback for stage "${stage}"`);
    const body = parseJsonBody(ctx, callbackSchema);
    const run = await engine.findRun(body.ticket_id);
    if (!run) throw new NotFound(`unknown ticket ${body.ticket_id}`);
    const flow = flows.approvalFlowFor(run.approvalCode);
    if (!flow) throw new NotFound(`flow ${run.flowId} of ticket ${body.ticket_id} is not loaded`);
    verifyBodySignature(flow.secret, ctx.get(TIMESTAMP_HEADER) || undefined, ctx.get(SIGNATURE_HEADER) || undefined, ctx.request.rawBody!, clock.now());
    if (!run.stages[stage]) throw new BadRequest(`ticket ${body.ticket_id} has no ${stage} stage`);
    await engine.acceptCallback(stage, run, body);
    ctx.body = { status: 'accepted', ticket_id: body.ticket_id, stage };
  });
  return router;
}
