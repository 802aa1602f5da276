import type { BusinessLog } from './business-api.js';
import { DEMO } from './settings.js';
import type { Transcript } from './transcript.js';
import type { World } from './world.js';

/** What each step of the demo works with. */
export interface StepContext {
  w: World;
  t: Transcript;
  business: BusinessLog;
  /** How long one awaited outcome may take before the step fails. */
  timeoutMs: number;
}

/** A step's outcome that did not come: the message names what was awaited. */
export class StepFailed extends Error {}

/** Polls `check` until it gives a value, or fails the step naming `what` ("the comment reaching Guance") after the step deadline. */
export async function until<T>(ctx: StepContext, what: string, check: () => T | undefined | null | false | Promise<T | undefined | null | false>): Promise<T> {
  const deadline = Date.now() + ctx.timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) {
      const waited = ctx.timeoutMs < 1000 ? `${ctx.timeoutMs} ms` : `${(ctx.timeoutMs / 1000).toFixed(1)} s`;
      throw new StepFailed(`no sign of ${what} after ${waited} (each wait is bounded by DEMO_STEP_TIMEOUT_MS)`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Calls the service's API with the demo's bearer token. */
export async function callApi(ctx: StepContext, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(ctx.w.service.url + path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${DEMO.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, json };
}
