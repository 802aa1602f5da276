import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { flowFileSchema, type Flow } from './flow-schema.js';

export interface FlowProblem {
  file: string;
  path: string;
  message: string;
  /** Set when the file is fine but the service lacks this environment variable to run it. */
  needsEnv?: string;
  /** Set when the problem is a "${env:NAME}" of the file whose variable is not set. */
  missingEnv?: string;
}

export type FlowLoad = { ok: true; flow: Flow } | { ok: false; problems: FlowProblem[] };

const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Replaces "${env:NAME}" in every string; a missing variable is a problem at that JSON path. */
function substituteEnv(node: unknown, env: NodeJS.ProcessEnv, path: string, problems: Array<{ path: string; message: string; missingEnv: string }>): unknown {
  if (typeof node === 'string') {
    return node.replace(ENV_REF, (_, name: string) => {
      const v = env[name];
      if (v === undefined || v === '') {
        problems.push({ path, message: `environment variable ${name} is not set`, missingEnv: name });
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(node)) return node.map((n, i) => substituteEnv(n, env, `${path}[${i}]`, problems));
  if (node && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, substituteEnv(v, env, path ? `${path}.${k}` : k, problems)]));
  }
  return node;
}

/** Parses one flow file: JSON, ${env:...}, schema. Problems name the file, the JSON path and why. */
export function parseFlowText(file: string, text: string, env: NodeJS.ProcessEnv): FlowLoad {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [{ file, path: '(file)', message: `not valid JSON: ${jsonErrorWithoutText((err as Error).message, text)}` }] };
  }
  const envProblems: Array<{ path: string; message: string; missingEnv: string }> = [];
  const substituted = substituteEnv(json, env, '', envProblems);
  const parsed = flowFileSchema.safeParse(substituted);
  const problems: FlowProblem[] = envProblems.map((p) => ({ file, ...p }));
  if (!parsed.success) {
    // A missing variable already names the path; the schema's echo of the empty value adds nothing.
    const envPaths = new Set(envProblems.map((p) => p.path));
    for (const issue of parsed.error.issues) {
      const path = issue.path.join('.') || '(root)';
      if (!envPaths.has(path)) problems.push({ file, path, message: issue.message });
    }
  }
  if (problems.length || !parsed.success) return { ok: false, problems };
  return { ok: true, flow: parsed.data };
}

export async function loadFlowFile(dir: string, name: string, env: NodeJS.ProcessEnv): Promise<FlowLoad> {
  let text: string;
  try {
    text = await readFile(join(dir, name), 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ file: name, path: '(file)', message: (err as Error).message }] };
  }
  return parseFlowText(name, text, env);
}

/** Flow files are the *.json files of the folder, except the generated schema. */
export async function listFlowFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.json') && n !== 'flow.schema.json').sort();
}

export function formatProblem(p: FlowProblem): string {
  return `${p.file}: ${p.path}: ${p.message}`;
}

/**
 * V8's JSON errors can quote a piece of the text ("Unexpected token 'x', "…" is not valid JSON"),
 * and a flow file may hold a secret written in clear by mistake: /readyz and the log show the
 * problem, so keep the reason and the place (line:column), never the text.
 */
export function jsonErrorWithoutText(message: string, text: string): string {
  const reason = message.replace(/, ".*is not valid JSON$/s, '');
  const at = /at position (\d+)/.exec(reason);
  if (!at) return reason;
  const before = text.slice(0, Number(at[1]));
  const line = before.split('\n').length;
  const column = Number(at[1]) - before.lastIndexOf('\n');
  return `${reason.replace(/ in JSON at position \d+.*$/s, '')} at line ${line}, column ${column}`;
}
