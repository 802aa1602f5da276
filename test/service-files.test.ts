import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { removeDir, tempDir } from './helpers/test-app.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const INSTALL = join(ROOT, 'scripts/install.sh');
const UNIT = join(ROOT, 'scripts/lark-bridge.service');
// main.ts gives a stop TASK_SYNC_STOP_GRACE_MS plus this before it exits on its own.
const MAIN_HARD_STOP_EXTRA_S = 10;

const install = (...args: string[]) => spawnSync('bash', [INSTALL, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });

/** `Key=value` lines of the [Service] section; a key given twice keeps every value. */
function serviceSettings(unit: string): Map<string, string[]> {
  const section = unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]'));
  const settings = new Map<string, string[]>();
  for (const line of section.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
  }
  return settings;
}

describe('scripts/lark-bridge.service', () => {
  it('runs the compiled service as a non-root user from an environment file, restarts on failure, and is hardened', async () => {
    const s = serviceSettings(await readFile(UNIT, 'utf8'));
    expect(s.get('ExecStart')![0]).toMatch(/node --enable-source-maps dist\/main\.js$/);
    expect(s.get('User')![0]).not.toBe('root');
    expect(s.get('EnvironmentFile')).toEqual(['/etc/lark-bridge/lark-bridge.env']);
    expect(s.get('Restart')).toEqual(['on-failure']);
    expect(s.get('RestartPreventExitStatus')).toEqual(['2']); // a refused start is not retried in a loop
    for (const [key, value] of [
      ['NoNewPrivileges', 'true'],
      ['ProtectSystem', 'strict'],
      ['PrivateTmp', 'true'],
      ['ProtectHome', 'true'],
      ['PrivateDevices', 'true'],
      ['CapabilityBoundingSet', ''],
    ]) {
      expect(s.get(key!), key).toEqual([value]);
    }
    // The only writable place is the data dir the unit gives DATA_DIR.
    const dataDir = s.get('Environment')!.find((e) => e.startsWith('DATA_DIR='))!.slice('DATA_DIR='.length);
    expect(s.get('ReadWritePaths')).toEqual([dataDir]);
  });

  it('waits longer for a stop than the service itself takes at most', async () => {
    const s = serviceSettings(await readFile(UNIT, 'utf8'));
    const timeoutStopS = Number(/^(\d+)s$/.exec(s.get('TimeoutStopSec')![0]!)?.[1]);
    const serviceGivesUpS = loadConfig({}).taskSync.stopGraceMs / 1000 + MAIN_HARD_STOP_EXTRA_S;
    expect(timeoutStopS).toBeGreaterThan(serviceGivesUpS);
  });

  it('passes systemd-analyze verify as install.sh renders it (when systemd-analyze is installed)', async () => {
    const dir = await tempDir('lark-bridge-unit-');
    try {
      const rendered = install('--print-unit', '--prefix', ROOT.replace(/\/$/, ''), '--user', 'lark-bridge');
      expect(rendered.status, rendered.stderr).toBe(0);
      expect(rendered.stdout).toContain(`WorkingDirectory=${ROOT.replace(/\/$/, '')}`);
      expect(rendered.stdout).toMatch(new RegExp(`^ExecStart=${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} --enable-source-maps dist/main\\.js$`, 'm'));
      const unit = join(dir, 'lark-bridge.service');
      await writeFile(unit, rendered.stdout);
      const analyze = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      if (analyze.error && (analyze.error as NodeJS.ErrnoException).code === 'ENOENT') return; // not a systemd host
      // verify exits 0 on unknown keys and bad values but prints them: nothing may be printed.
      expect(analyze.status, analyze.stderr).toBe(0);
      expect(`${analyze.stdout}${analyze.stderr}`.trim()).toBe('');
    } finally {
      await removeDir(dir);
    }
  });
});

describe('scripts/install.sh', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('lark-bridge-install-');
  });
  afterAll(async () => {
    await removeDir(dir);
  });

  it('--help shows the options and exits 0', () => {
    const r = install('--help');
    expect(r.status).toBe(0);
    for (const option of ['--prefix', '--user', '--data-dir', '--config-dir', '--unit-dir', '--no-systemd', '--dry-run', '--print-unit']) expect(r.stdout).toContain(option);
  });

  it.each([
    [['--bogus'], 'install: unknown argument "--bogus" (see --help)'],
    [['--prefix'], 'install: --prefix needs a value (see --help)'],
    [['--prefix', '--dry-run'], 'install: --prefix needs a value (see --help)'],
    [['--data-dir', 'relative/dir', '--dry-run'], 'install: "relative/dir" must be an absolute path'],
    [['--user', 'root', '--dry-run'], 'install: --user root: the service must not run as root (give a system user; it is created if missing)'],
    [['--user', 'Bad User', '--dry-run'], 'install: --user "Bad User" is not a valid user name'],
  ])('refuses %j in one line, exit 2, before changing anything', (args, line) => {
    const r = install(...args);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(line);
    expect(r.stdout).toBe('');
  });

  it('--dry-run prints every step with the given paths and changes nothing', () => {
    const p = (name: string) => join(dir, name);
    const r = install('--dry-run', '--prefix', p('opt'), '--user', 'lb-test-user', '--data-dir', p('data'), '--config-dir', p('etc'), '--unit-dir', p('units'));
    expect(r.status, r.stderr).toBe(0);
    const plan = r.stdout;
    expect(plan).toContain('+ useradd --system --user-group');
    expect(plan).toContain('lb-test-user');
    expect(plan).toContain(`+ npm --prefix ${p('opt')}.new ci --no-audit --no-fund`);
    expect(plan).toContain(`+ npm --prefix ${p('opt')}.new run build`);
    expect(plan).toContain(`+ npm --prefix ${p('opt')}.new prune --omit=dev`);
    expect(plan).toContain(`+ mv ${p('opt')}.new ${p('opt')}`);
    expect(plan).toContain(`+ write ${p('etc')}/lark-bridge.env`);
    expect(plan).toContain(`+ chown lb-test-user:lb-test-user ${p('data')}`);
    expect(plan).toContain(`+ write ${p('units')}/lark-bridge.service`);
    expect(plan).toContain('+ systemctl daemon-reload');
    expect(plan).toContain('+ systemctl try-restart lark-bridge.service');
    for (const name of ['opt', 'opt.new', 'data', 'etc', 'units']) expect(existsSync(p(name)), name).toBe(false);
  });

  it('--print-unit renders the paths and user it is given; a data dir outside /var/lib drops StateDirectory', () => {
    const r = install('--print-unit', '--prefix', '/srv/lark', '--user', 'bridge', '--data-dir', '/srv/lark-data', '--config-dir', '/srv/lark-etc');
    expect(r.status).toBe(0);
    const s = serviceSettings(r.stdout);
    expect(s.get('User')).toEqual(['bridge']);
    expect(s.get('WorkingDirectory')).toEqual(['/srv/lark']);
    expect(s.get('EnvironmentFile')).toEqual(['/srv/lark-etc/lark-bridge.env']);
    expect(s.get('ReadWritePaths')).toEqual(['/srv/lark-data']);
    expect(s.get('Environment')).toEqual(expect.arrayContaining(['DATA_DIR=/srv/lark-data', 'FLOWS_DIR=/srv/lark-etc/flows', 'TEMPLATES_DIR=/srv/lark/templates']));
    expect(s.has('StateDirectory')).toBe(false);
    expect(serviceSettings(install('--print-unit').stdout).get('StateDirectory')).toEqual(['lark-bridge']);
  });
});
