import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commandModules } from '../../services/cli/commands/index.ts';
// @ts-expect-error plain JS module without type declarations (bin/ runs without a build step)
import { distFreshness } from '../../bin/dist-freshness.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const BIN = path.join(root, 'bin/switchboard');
const RECORDER = path.join(root, 'test/support/load-recorder.mjs');
const work = mkdtempSync(path.join(tmpdir(), 'sb-dist-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs bin/switchboard (or `bin` given) recording every module URL it resolves. */
function runRecorded(
  args: string[],
  bin = BIN,
): { code: number | null; stdout: string; stderr: string; loaded: string[] } {
  const log = path.join(work, `loads-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(log, '');
  const r = spawnSync(process.execPath, ['--import', RECORDER, bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SWITCHBOARD_LOAD_LOG: log },
    timeout: 60_000,
  });
  return {
    code: r.status,
    stdout: r.stdout,
    stderr: r.stderr,
    loaded: readFileSync(log, 'utf8').split('\n').filter(Boolean),
  };
}

const HEAVY = ['@kubernetes/client-node', 'better-sqlite3', 'netlink', 'kysely', '@nats-io', 'zod'];
const heavyLoaded = (loaded: string[]) => loaded.filter((u) => HEAVY.some((p) => u.includes(`/node_modules/${p}/`)));

describe('npm run build (dist/)', { timeout: 90_000 }, () => {
  it('emits ES modules with source maps for the CLI entry and every chunk', () => {
    expect(existsSync(path.join(root, 'dist/main.js'))).toBe(true);
    const js = readdirSync(path.join(root, 'dist/chunks')).filter((f) => f.endsWith('.js'));
    expect(js.length).toBeGreaterThan(5);
    for (const f of ['main.js', ...js.map((c) => `chunks/${c}`)]) {
      expect(existsSync(path.join(root, 'dist', `${f}.map`)), f).toBe(true);
      expect(readFileSync(path.join(root, 'dist', f), 'utf8'), f).toMatch(/\/\/# sourceMappingURL=\S+\.js\.map\n?$/);
    }
  });

  /** The build's worker entries sit where startModuleWorker (libs/threads/module-worker.ts) looks from the chunk that names them. */
  const expectWorkerBesideCaller = (name: string) => {
    const holders = ['main.js', ...readdirSync(path.join(root, 'dist/chunks')).map((c) => `chunks/${c}`)].filter(
      (f) => f.endsWith('.js') && readFileSync(path.join(root, 'dist', f), 'utf8').includes(`"${name}"`),
    );
    expect(holders, name).toHaveLength(1);
    const beside = path.dirname(holders[0]!);
    expect(
      existsSync(path.join(root, 'dist', beside, holders[0]!.startsWith('chunks/') ? '..' : '.', `${name}.js`)),
      name,
    ).toBe(true);
  };

  it('the manifest decoder finds its worker in the build and the worker decodes (probe10 H9)', () => {
    expectWorkerBesideCaller('manifest-decode-worker');
    const script = `import { Worker } from 'node:worker_threads';
const w = new Worker(${JSON.stringify(path.join(root, 'dist/manifest-decode-worker.js'))}, { execArgv: [] });
w.on('message', (m) => { process.stdout.write(JSON.stringify(m)); void w.terminate(); });
w.postMessage({ id: 7, text: 'kind: Service\\nmetadata: {name: a}\\n---\\nb: *nowhere\\n' });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const m = JSON.parse(r.stdout) as { id: number; parse: { ok: boolean; items: unknown[]; rejected: unknown[] } };
    expect(m.id).toBe(7);
    expect(m.parse.items).toEqual([{ kind: 'Service', metadata: { name: 'a' } }]);
    expect(m.parse.rejected).toHaveLength(1);
  });

  it("the nftables whole read's dump thread finds its worker in the build, and the worker answers", () => {
    expectWorkerBesideCaller('nft-dump-worker');
    // no netns here: a dump of a table that is not there, in this process's namespace, is a set
    // gone (null), which is all this asks of the bundled worker (test/netns/nft-dump-thread.test.ts
    // reads a real table through it from the sources)
    const script = `import { Worker } from 'node:worker_threads';
const w = new Worker(${JSON.stringify(path.join(root, 'dist/nft-dump-worker.js'))}, { execArgv: [] });
const got = [];
w.on('message', (m) => { got.push(m); if (m.done || m.error) w.postMessage({ close: true }); });
w.on('exit', (code) => process.stdout.write(JSON.stringify({ got, code })));
w.postMessage({ id: 3, table: { family: 1, table: 'sb-dist-test-${process.pid}' }, sets: ['nope'] });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    // the set's chunk, done, and the thread ends by itself once told to close
    expect(JSON.parse(r.stdout)).toEqual({
      got: [
        { id: 3, from: 0, payloads: [null] },
        { id: 3, done: true },
      ],
      code: 0,
    });
  });

  it('bin/switchboard runs dist/, not the sources, when dist/ is current', () => {
    const r = runRecorded(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.loaded).toContain(`file://${root}/dist/main.js`);
    expect(r.loaded.filter((u) => u.endsWith('.ts') || u.includes('/node_modules/tsx/'))).toEqual([]);
  });

  it('--help and ctl load no command module beyond their own: no Kubernetes client, SQLite, netlink, NATS or wire schemas', () => {
    const help = runRecorded(['--help']);
    expect(help.stdout).toContain('ctl');
    expect(heavyLoaded(help.loaded)).toEqual([]);
    const ctl = runRecorded(['ctl', '--server', 'http://127.0.0.1:1', 'status']);
    expect(ctl.code).toBe(1);
    expect(ctl.stderr).toMatch(/^switchboard: cannot reach planner/);
    expect(ctl.loaded.some((u) => /\/dist\/chunks\/ctl-\w+\.js$/.test(u))).toBe(true);
    expect(heavyLoaded(ctl.loaded)).toEqual([]);
    // the same recorder does see them when a command needs them (the check above can fail)
    // a file that is there (a missing --db is a usage error, found before SQLite is loaded) but not a database
    const junk = path.join(work, 'junk.db');
    writeFileSync(junk, 'not a database '.repeat(20));
    const db = runRecorded(['db', 'status', '--db', junk]);
    expect(db.code).toBe(1);
    expect(heavyLoaded(db.loaded).some((u) => u.includes('/better-sqlite3/'))).toBe(true);
  });

  it('plan and planner --help load no Kubernetes client; a planner reading a kubeconfig does', () => {
    // @kubernetes/client-node is ~2,000 modules (~1 s of CPU): only a kubeconfig or in-cluster
    // source loads it (libs/kube/kube-config.ts); `plan` loaded it through libs/kube before
    const kube = (loaded: string[]) => loaded.filter((u) => u.includes('/node_modules/@kubernetes/client-node/'));
    const plan = runRecorded([
      'plan',
      '--manifests',
      path.join(root, 'examples/demo'),
      '--node',
      'node-a',
      '--format',
      'json',
    ]);
    expect(plan.code).toBe(0);
    expect(JSON.parse(plan.stdout)).toHaveProperty('boundAddresses');
    expect(kube(plan.loaded)).toEqual([]);
    expect(plan.loaded.some((u) => /\/dist\/chunks\/plan-\w+\.js$/.test(u))).toBe(true);
    const help = runRecorded(['planner', '--help']);
    expect(help.code).toBe(0);
    expect(kube(help.loaded)).toEqual([]);
    // the recorder sees it where it is needed (so the checks above can fail)
    const junk = path.join(work, 'junk.kubeconfig');
    writeFileSync(junk, 'not: [a kubeconfig\n');
    const db = path.join(work, 'never.db');
    const planner = runRecorded(['planner', '--kubeconfig', junk, '--nats', 'nats://127.0.0.1:1', '--db', db]);
    expect(planner.code).toBe(2);
    expect(planner.stderr).toMatch(
      /^switchboard: --kubeconfig: kubeconfig \S+junk.kubeconfig: cannot read it as a kubeconfig/,
    );
    expect(kube(planner.loaded).length).toBeGreaterThan(100);
    expect(existsSync(db)).toBe(false);
  });

  it('every command module in services/cli/commands is registered (lazily) in index.ts', () => {
    // a command module exports `registerX(program: Command, setExit)`; helpers (ctl-wait.ts...) do not
    const dir = path.join(root, 'services/cli/commands');
    const modules = readdirSync(dir).filter(
      (f) =>
        f.endsWith('.ts') &&
        /export function register\w+\(program: Command, setExit: SetExit\)/.test(
          readFileSync(path.join(dir, f), 'utf8'),
        ),
    );
    const src = readFileSync(path.join(root, 'services/cli/commands/index.ts'), 'utf8');
    for (const m of modules) expect(src, m).toContain(`import('./${m}')`);
    expect(Object.keys(commandModules).length).toBe(modules.length);
  });
});

describe('bin/switchboard never runs a stale dist/', { timeout: 90_000 }, () => {
  /** A checkout-shaped tree: bin/ and dist/ copied, sources and node_modules linked. */
  function checkout(name: string, opts: { sources: boolean }): string {
    const dir = path.join(work, name);
    cpSync(path.join(root, 'bin'), path.join(dir, 'bin'), { recursive: true });
    cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
    for (const f of ['package.json', 'tsconfig.json']) symlinkSync(path.join(root, f), path.join(dir, f));
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    if (opts.sources)
      for (const d of ['libs', 'services', 'migrations', 'scripts']) symlinkSync(path.join(root, d), path.join(dir, d));
    return dir;
  }
  const backdate = (dir: string) => {
    const file = path.join(dir, 'dist/build-info.json');
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), startedAt: 0 }));
  };

  it('a source file newer than the build: runs the sources through tsx and says so', () => {
    const dir = checkout('stale', { sources: true });
    expect(distFreshness(dir).state).toBe('fresh');
    backdate(dir);
    expect(distFreshness(dir)).toMatchObject({
      state: 'stale',
      reason: expect.stringMatching(/changed after the build$/),
    });
    const r = runRecorded(['plan', '--help'], path.join(dir, 'bin/switchboard'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^switchboard: \S+ changed after the build; running the sources through tsx/);
    expect(r.loaded.filter((u) => u.includes('/dist/main.js') || u.includes('/dist/chunks/'))).toEqual([]);
    expect(r.loaded.some((u) => u.endsWith('/services/cli/main.ts'))).toBe(true);
  });

  it('a source file removed since the build, or no build at all: sources through tsx', () => {
    const dir = checkout('removed', { sources: true });
    const file = path.join(dir, 'dist/build-info.json');
    const info = JSON.parse(readFileSync(file, 'utf8')) as { inputs: string[] };
    writeFileSync(file, JSON.stringify({ ...info, inputs: [...info.inputs, 'libs/gone.ts'] }));
    expect(distFreshness(dir)).toEqual({ state: 'stale', reason: 'libs/gone.ts was removed after the build' });
    rmSync(path.join(dir, 'dist'), { recursive: true });
    const r = runRecorded(['--help'], path.join(dir, 'bin/switchboard'));
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^switchboard: dist\/ is not built; running the sources through tsx/);
  });

  it('without sources (the image) dist/ runs whatever its build time', () => {
    const dir = checkout('image', { sources: false });
    backdate(dir);
    expect(distFreshness(dir)).toEqual({ state: 'fresh' });
    const r = runRecorded(
      ['plan', '--manifests', path.join(root, 'examples/demo'), '--node', 'node-a'],
      path.join(dir, 'bin/switchboard'),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('-A -t');
    expect(r.loaded).toContain(`file://${dir}/dist/main.js`);
    // the migrations are compiled in: a new event log needs nothing beside dist/
    const db = runRecorded(['db', 'migrate', '--db', path.join(dir, 'log.db')], path.join(dir, 'bin/switchboard'));
    expect(db.stderr).toBe('');
    expect(db.stdout).toMatch(/^schema version \d+/);
  });
});
