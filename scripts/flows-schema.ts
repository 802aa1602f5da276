// npm run flows:schema — writes flows/flow.schema.json from the zod schema; with --check, fails when it is stale.
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { flowFileSchema } from '../src/flows/flow-schema.js';

const target = new URL('../flows/flow.schema.json', import.meta.url);
const schema = z.toJSONSchema(flowFileSchema, { io: 'input', unrepresentable: 'any' });
const text = `${JSON.stringify({ ...schema, title: 'lark-bridge flow file' }, null, 2)}\n`;
if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '');
  if (current !== text) {
    console.error('flows/flow.schema.json is stale: run npm run flows:schema');
    process.exit(1);
  }
  console.log('flows/flow.schema.json is current');
} else {
  await writeFile(target, text);
  console.log('wrote flows/flow.schema.json');
}
