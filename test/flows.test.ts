import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { FieldSpec } from '../src/flows/flow-schema.js';
import { parseFlowText } from '../src/flows/load-flows.js';
import { FieldMappingError, mapFormFields } from '../src/flows/map-fields.js';
import { renderCard } from '../src/lark/card-template.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const run = promisify(execFile);
const form = (widgets: unknown[]) => JSON.stringify(widgets);
const map = (widgets: unknown[], specs: Record<string, FieldSpec>) => mapFormFields(form(widgets), specs);
const problemsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    if (e instanceof FieldMappingError) return e.problems;
    throw e;
  }
  return [];
};

describe('field mapping', () => {
  it('maps every type, matching widgets by name, id or custom_id', () => {
    const out = map(
      [
        { id: 'w1', name: 'Account', type: 'input', value: 'alice' },
        { id: 'w2', custom_id: 'cnt', name: 'Count', type: 'number', value: '3' },
        { id: 'w3', name: 'Urgent', type: 'input', value: 'true' },
        { id: 'w4', name: 'Day', type: 'date', value: '2026-12-31T00:00:00+08:00' },
        { id: 'w5', name: 'At', type: 'date', value: '2026-12-31T08:30:00+08:00' },
        { id: 'w6', name: 'Role', type: 'radioV2', value: 'opt-admin' },
        { id: 'w7', name: 'Envs', type: 'checkboxV2', value: ['Prod', 'Staging'] },
        { id: 'w8', name: 'Owners', type: 'contact', value: ['u1', 'u2'], open_ids: ['ou_1', 'ou_2'] },
        { id: 'w9', name: 'Files', type: 'attachmentV2', value: ['https://f/1', 'https://f/2'], ext: "'a','b'" },
        {
          id: 'w10',
          name: 'Hosts',
          type: 'fieldList',
          value: [
            [
              { id: 'h', name: 'Host', type: 'input', value: 'db1' },
              { id: 'p', name: 'Port', type: 'number', value: 5432 },
            ],
            [
              { id: 'h', name: 'Host', type: 'input', value: 'db2' },
              { id: 'p', name: 'Port', type: 'number', value: 5433 },
            ],
          ],
        },
      ],
      {
        account: { widget: 'Account', type: 'string' },
        count: { widget: 'cnt', type: 'number' },
        urgent: { widget: 'w3', type: 'boolean' },
        day: { widget: 'Day', type: 'date' },
        at: { widget: 'At', type: 'datetime' },
        role: { widget: 'Role', type: 'enum', map: { 'opt-admin': 'admin' } },
        envs: { widget: 'Envs', type: 'strings', map: { Prod: 'prod', Staging: 'stg' } },
        owners: { widget: 'Owners', type: 'users' },
        files: { widget: 'Files', type: 'attachments' },
        hosts: { widget: 'Hosts', type: 'table', fields: { host: { widget: 'Host', type: 'string' }, port: { widget: 'Port', type: 'number' } } },
        missing: { widget: 'Nope', type: 'string', default: 'n/a' },
      },
    );
    expect(out).toEqual({
      account: 'alice',
      count: 3,
      urgent: true,
      day: '2026-12-31',
      at: '2026-12-31T00:30:00.000Z',
      role: 'admin',
      envs: ['prod', 'stg'],
      owners: ['ou_1', 'ou_2'],
      files: ['https://f/1', 'https://f/2'],
      hosts: [
        { host: 'db1', port: 5432 },
        { host: 'db2', port: 5433 },
      ],
      missing: 'n/a',
    });
  });

  it('names every field that is missing or does not parse', () => {
    const problems = problemsOf(() =>
      map(
        [
          { name: 'Count', value: 'many' },
          { name: 'Day', value: 'someday' },
          { name: 'Hosts', value: [[{ name: 'Port', value: 'x' }]] },
        ],
        {
          account: { widget: 'Account', type: 'string', required: true },
          count: { widget: 'Count', type: 'number' },
          day: { widget: 'Day', type: 'date' },
          hosts: { widget: 'Hosts', type: 'table', fields: { port: { widget: 'Port', type: 'number' } } },
        },
      ),
    );
    expect(problems).toEqual([
      'field account ("Account") is required but the form has no value for it',
      'field count ("Count"): expected a number, got "many"',
      'field day ("Day"): expected a date, got "someday"',
      'field hosts[1].port ("Port"): expected a number, got "x"',
    ]);
    expect(problemsOf(() => mapFormFields('not json', {}))).toEqual(['the approval form could not be read (not a JSON array of widgets)']);
  });
});

describe('flow files', () => {
  const valid = {
    kind: 'approval',
    id: 'demo',
    name: 'Demo',
    approvalCode: 'CODE',
    execute: { url: 'https://example.com/x' },
    secret: '${env:DEMO_SECRET}',
  };

  it('fills ${env:NAME}, applies defaults and derives nodes from the stages present', () => {
    const r = parseFlowText('demo.json', JSON.stringify(valid), { DEMO_SECRET: 's'.repeat(20) });
    expect(r.ok).toBe(true);
    if (!r.ok || r.flow.kind !== 'approval') throw new Error('expected an approval flow');
    expect(r.flow).toMatchObject({ secret: 's'.repeat(20), nodes: { execute: 'execute_node' }, execute: { mode: 'sync', timeoutMs: 10000, retries: 2 } });
    expect(r.flow.nodes).not.toHaveProperty('check');
  });

  it('reports file, JSON path and reason', () => {
    const bad = { ...valid, check: { url: 'ftp://x', mode: 'later' }, fields: { role: { widget: 'Role', type: 'enum' } }, extra: 1 };
    const r = parseFlowText('bad.json', JSON.stringify(bad), {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const lines = r.problems.map((p) => `${p.file}: ${p.path}: ${p.message}`);
    expect(lines).toContain('bad.json: secret: environment variable DEMO_SECRET is not set');
    expect(lines.some((l) => l.startsWith('bad.json: check.url: must be an http(s) URL'))).toBe(true);
    expect(lines.some((l) => l.startsWith('bad.json: check.mode:'))).toBe(true);
    expect(lines).toContain('bad.json: fields.role.map: an enum field needs a map of option → value');
    expect(lines.some((l) => l.includes('extra'))).toBe(true);
    const noStage = parseFlowText('n.json', JSON.stringify({ ...valid, execute: undefined }), { DEMO_SECRET: 's'.repeat(20) });
    expect(!noStage.ok && noStage.problems[0]!.message).toBe('a flow needs check, execute or both');
  });

  it('npm run flows:check passes the shipped examples and fails on a broken file', async () => {
    const ok = await run('npx', ['tsx', 'scripts/flows-check.ts', 'flows']);
    expect(ok.stdout).toContain('3 valid, 0 invalid');
    const dir = await tempDir('lark-bridge-flowcheck-');
    await writeFile(join(dir, 'broken.json'), '{"kind":"approval"}');
    const failed = await run('npx', ['tsx', 'scripts/flows-check.ts', dir]).catch((e: { code: number; stdout: string }) => e);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stdout: string }).stdout).toMatch(/FAIL {2}broken\.json: id: /);
    await removeDir(dir);
  });

  it('renders card templates with placeholders, $if and update_multi forced on', async () => {
    const dir = await tempDir('lark-bridge-tpl-');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 't.json'), JSON.stringify({ header: { title: { content: '{{name}} "{{q}}"' } }, elements: [{ $if: 'show', tag: 'x' }, { tag: 'y' }] }));
    const shown = await renderCard(dir, 't', { name: 'N', q: 'a"b', show: true });
    expect(shown).toEqual({ header: { title: { content: 'N "a"b"' } }, elements: [{ tag: 'x' }, { tag: 'y' }], config: { update_multi: true } });
    const hidden = await renderCard(dir, 't', { name: 'N', q: '' });
    expect(hidden.elements).toEqual([{ tag: 'y' }]);
    await removeDir(dir);
  });
});

describe('a flow file that is not JSON', () => {
  it('names the reason and the place, never a piece of the text (it could be a secret written in clear)', async () => {
    const broken = parseFlowText('leaky.json', '{\n  "secret": "s3cr3t-in-clear-0123456789" x\n}', {});
    expect(broken.ok).toBe(false);
    const message = (broken as { problems: Array<{ message: string }> }).problems[0]!.message;
    expect(message).toMatch(/^not valid JSON: .* at line 2, column \d+$/);
    expect(message).not.toContain('s3cr3t');
    const quoted = parseFlowText('leaky.json', 's3cr3t-in-clear-0123456789', {});
    const quotedMessage = (quoted as { problems: Array<{ message: string }> }).problems[0]!.message;
    expect(quotedMessage).toMatch(/^not valid JSON: Unexpected token/);
    expect(quotedMessage).not.toContain('s3cr3t');
  });
});
