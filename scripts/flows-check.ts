// npm run flows:check — validates every flow file; exits 1 on the first invalid one (all are reported).
import { config as loadDotenv } from 'dotenv';
import { formatProblem, listFlowFiles, loadFlowFile } from '../src/flows/load-flows.js';

loadDotenv({ quiet: true });
const dir = process.argv[2] ?? process.env.FLOWS_DIR ?? './flows';
// Secrets come from the environment at run time; for a structural check, a placeholder will do.
const env = process.env.FLOWS_CHECK_STRICT_ENV ? process.env : new Proxy(process.env, { get: (t, k) => (typeof k === 'string' ? (t[k] ?? `checked-placeholder-for-${k}`) : undefined) });
let bad = 0;
const files = await listFlowFiles(dir);
for (const name of files) {
  const r = await loadFlowFile(dir, name, env);
  if (r.ok) console.log(`ok    ${name} (${r.flow.kind} ${r.flow.id})`);
  else {
    bad++;
    for (const p of r.problems) console.log(`FAIL  ${formatProblem(p)}`);
  }
}
console.log(`${files.length - bad} valid, ${bad} invalid flow file(s) in ${dir}`);
process.exit(bad ? 1 : 0);
