#!/usr/bin/env node
// npm run build: compiles src/ into a fresh dist/ (tsc -p tsconfig.build.json) and stamps it.
// npm start runs `node scripts/build.mjs --if-stale` first (prestart): on a fresh clone, or after
// a pull that changed src/, it builds; otherwise it returns at once, without needing TypeScript.
// Plain JavaScript on purpose: it must run before anything is compiled.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const stamp = join(dist, '.build-stamp');
// What a build reads: a change to any of them makes dist/ stale.
const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'];

function newestMtime(path) {
  if (!existsSync(path)) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs; // a deleted file changes its folder's mtime
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

function isStale() {
  if (!existsSync(join(dist, 'main.js')) || !existsSync(stamp)) return true;
  const built = statSync(stamp).mtimeMs;
  return inputs.some((p) => newestMtime(join(root, p)) > built);
}

if (process.argv.includes('--if-stale') && !isStale()) process.exit(0);

let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  console.error('lark-bridge: cannot build dist/: TypeScript is not installed (run `npm ci`, which installs the dev dependencies, then try again)');
  process.exit(1);
}
console.error('lark-bridge: building dist/ (tsc -p tsconfig.build.json)…');
rmSync(dist, { recursive: true, force: true }); // no compiled file of a deleted source survives
const run = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (run.status !== 0) {
  console.error('lark-bridge: the build failed (see above); dist/ is not usable');
  process.exit(run.status ?? 1);
}
writeFileSync(stamp, `${new Date().toISOString()}\n`);
