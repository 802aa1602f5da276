// npm run flows:try -- FILE [--form sample.json] — what a flow would do, without Lark and without sending anything.
// Approval flow + --form: the fields mapped from the form, and each stage's call to the business API (URL,
// headers with the signature, the exact body). Poller flow: one page of its source (read-only) and the cards
// a run would post. Errors name the file, the JSON path and the reason; the exit code is 1 (2: bad usage).
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { config as loadDotenv } from 'dotenv';
import { systemClock } from '../src/clock.js';
import { ConfigError, loadConfig } from '../src/config.js';
import type { ApprovalFlow, PollerFlow } from '../src/flows/flow-schema.js';
import { formatProblem, parseFlowText } from '../src/flows/load-flows.js';
import { FieldMappingError } from '../src/flows/map-fields.js';
import { readFormSample, SampleError, tryApproval } from '../src/flows/try-approval.js';
import { tryPoller, TryFailed } from '../src/pollers/try-poller.js';
import { createUpstreamClient } from '../src/upstream/client.js';

const USAGE = `usage: npm run flows:try -- FILE [--form SAMPLE.json] [options]
  approval flow:  --form SAMPLE.json (required)  --ticket ID  --task ID  --execute-task ID  --applicant USER_ID  --at UNIX_SECONDS|ISO
  poller flow:    --since 2h|30m|1d|ISO (default: maxCatchUpSec ago)  --limit N (default: maxPerRun)
  both:           --json (one JSON document on stdout)`;

class Usage extends Error {}

const fail = (line: string) => process.stderr.write(`FAIL  ${line}\n`);

async function main(): Promise<number> {
  loadDotenv({ quiet: true });
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      form: { type: 'string' },
      ticket: { type: 'string' },
      task: { type: 'string' },
      'execute-task': { type: 'string' },
      applicant: { type: 'string' },
      at: { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) throw new Usage('give exactly one flow file');
  const file = positionals[0]!;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    fail(`${file}: (file): ${(err as Error).message}`);
    return 1;
  }
  // The flow is read as the service reads it: ${env:NAME} from the environment (and .env).
  const parsed = parseFlowText(file, text, process.env);
  if (!parsed.ok) {
    for (const p of parsed.problems) fail(formatProblem(p));
    return 1;
  }
  const config = loadConfig(process.env);
  const flow = parsed.flow;
  if (flow.kind === 'approval') {
    if (!values.form) throw new Usage(`${file} is an approval flow: give a form sample with --form SAMPLE.json`);
    return tryApprovalFile(file, text, flow, values.form, values, config.publicBaseUrl);
  }
  if (values.form) throw new Usage(`${file} is a poller flow: --form is for approval flows`);
  const upstream = createUpstreamClient({ connectTimeoutMs: config.taskSync.connectTimeoutMs, verifySsl: config.taskSync.verifySsl, caBundlePath: config.taskSync.caBundle });
  try {
    return await tryPollerFile(file, flow, values, { upstream, templatesDir: config.templatesDir });
  } finally {
    await upstream.close(0);
  }
}

async function tryApprovalFile(file: string, flowText: string, flow: ApprovalFlow, formFile: string, v: Record<string, unknown>, publicBaseUrl: string): Promise<number> {
  let sample;
  try {
    sample = readFormSample(JSON.parse(await readFile(formFile, 'utf8')));
  } catch (err) {
    fail(`${formFile}: ${err instanceof SampleError ? err.path : '(file)'}: ${(err as Error).message}`);
    return 1;
  }
  const instanceCode = str(v.ticket) ?? sample.instanceCode ?? 'TRY-INSTANCE';
  let tried;
  try {
    tried = tryApproval(flow, sample.form, {
      publicBaseUrl,
      instanceCode,
      taskId: str(v.task) ?? 'TRY-TASK',
      executeTaskId: str(v['execute-task']),
      applicant: str(v.applicant) ? { userId: str(v.applicant) } : { userId: sample.userId ?? 'TRY-APPLICANT', openId: sample.openId },
      nowMs: timeArg(v.at, 'at') ?? systemClock.now(),
    });
  } catch (err) {
    if (!(err instanceof FieldMappingError)) throw err;
    for (const p of err.fields) {
      if (p.field) fail(`${file}: fields.${p.field}: the form's "${p.widget}" (${formFile})${p.kind === 'missing' ? ' ' : ': '}${p.message}`);
      else fail(`${formFile}: form: ${p.message}`);
    }
    fail(`the service would reject the approval with: The request cannot be processed: ${err.message}`);
    return 1;
  }
  const secretFrom = /"secret"\s*:\s*"([^"]*)"/.exec(flowText)?.[1] ?? 'the flow file';
  if (v.json) {
    print(JSON.stringify({ flow: flow.id, kind: 'approval', ticket: instanceCode, fields: tried.fields, calls: tried.calls }, null, 2));
    return 0;
  }
  print(`flow ${flow.id} (approval) from ${file}, form ${formFile}, ticket ${instanceCode}`);
  print(`\nmapped fields:\n${indent(JSON.stringify(tried.fields, null, 2))}`);
  for (const c of tried.calls) {
    print(`\n${c.stage}: ${c.method} ${c.url}   (${c.mode}, timeout ${c.timeoutMs} ms, ${c.retries} extra tries)`);
    for (const [name, value] of Object.entries(c.headers)) print(`  ${name}: ${value}`);
    print(`  body (the exact bytes signed):\n  ${c.body}`);
    if (c.mode === 'async') print(`  the result is expected later at POST ${publicBaseUrl}/api/v1/lark/${c.stage}/callback, signed the same way`);
  }
  print(`\nx-bridge-signature = hex HMAC-SHA256, key: the flow's secret (${secretFrom}), message: "<x-bridge-timestamp>.<body>"`);
  print('Nothing was sent: no Lark call, no business call.');
  return 0;
}

async function tryPollerFile(file: string, flow: PollerFlow, v: Record<string, unknown>, deps: { upstream: ReturnType<typeof createUpstreamClient>; templatesDir: string }): Promise<number> {
  const now = systemClock.now();
  const since = timeArg(v.since, 'since', now) ?? now - flow.maxCatchUpSec * 1000;
  const limit = v.limit === undefined ? flow.maxPerRun : Number(v.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new Usage(`--limit: expected a whole number, got "${String(v.limit)}"`);
  let tried;
  try {
    tried = await tryPoller(flow, { ...deps, clock: systemClock }, { since, limit });
  } catch (err) {
    if (!(err instanceof TryFailed)) throw err;
    fail(`${file}: ${err.where}: ${err.message}`);
    return 1;
  }
  if (v.json) {
    print(JSON.stringify({ flow: flow.id, kind: 'poller', ...tried }, null, 2));
    return 0;
  }
  print(`flow ${flow.id} (poller) from ${file}: ${flow.source.type} source, window ${tried.window.since} to ${tried.window.until}, first page only`);
  print(`listed ${tried.listed} item(s) in the window; a run posts at most ${flow.maxPerRun}, oldest first${tried.more ? ` (${tried.more} not shown)` : ''}`);
  tried.cards.forEach((c, i) => {
    print(`\ncard ${i + 1} of ${tried.listed}: item ${c.itemId} "${c.title}" (created ${c.createdAt}) → ${flow.notify.type} ${c.target}`);
    print(indent(JSON.stringify(c.payload, null, 2)));
  });
  print('\nRead-only: nothing was posted, no cursor moved, no item marked as seen.');
  return 0;
}

const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

/** Unix seconds, an ISO time, or (with `now`) a span back from now such as 90s, 30m, 2h, 1d. */
function timeArg(v: unknown, name: string, now?: number): number | undefined {
  const s = str(v);
  if (!s) return undefined;
  const span = /^(\d+)([smhd])$/.exec(s);
  if (span && now !== undefined) return now - Number(span[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[span[2] as 's']!;
  if (/^\d{9,11}$/.test(s)) return Number(s) * 1000;
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new Usage(`--${name}: expected ${now === undefined ? 'unix seconds' : 'a span such as 2h, unix seconds'} or an ISO time, got "${s}"`);
  return ms;
}

const indent = (s: string) => s.replace(/^/gm, '  ');
const print = (s: string) => process.stdout.write(`${s}\n`);

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    if (err instanceof Usage || err instanceof ConfigError || (err as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`flows:try: ${(err as Error).message}\n${err instanceof Usage || !(err instanceof ConfigError) ? `${USAGE}\n` : ''}`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`flows:try: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
