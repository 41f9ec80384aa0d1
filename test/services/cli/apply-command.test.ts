import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectIpvsCapabilities } from '../../../libs/dataplane/index.ts';

const run = promisify(execFile);
const ns = `sb-apply-${process.pid}`;
const caps = await detectIpvsCapabilities({});

interface Summary {
  mode: string;
  writes: number;
  verified: boolean;
  notes: string[];
  virtualServers: number;
}
async function apply(...extra: string[]): Promise<Summary> {
  const r = await run('ip', [
    'netns',
    'exec',
    ns,
    path.resolve('bin/switchboard'),
    'apply',
    '--manifests',
    'examples/demo',
    '--node',
    'node-a',
    '--once',
    '--json',
    '--state-dir',
    `/tmp/${ns}`,
    ...extra,
  ]);
  return JSON.parse(r.stdout) as Summary;
}

// On this host there is no IPVS: `--mode auto` must fall back to nftables and say so. Where the
// kernel has IPVS (the VM) the ipvs path is covered by test/vm/applier instead.
describe.skipIf(caps.ipvs)('switchboard apply --once --mode auto (no IPVS here) in a fresh netns', () => {
  beforeAll(async () => {
    await run('ip', ['netns', 'add', ns]);
  });
  afterAll(async () => {
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await run('rm', ['-rf', `/tmp/${ns}`]);
  });

  it('programs nftables, notes the fallback, and a second run (new process) writes nothing', async () => {
    const first = await apply('--mode', 'auto');
    expect(first.mode).toBe('nftables');
    expect(first.verified).toBe(true);
    expect(first.writes).toBeGreaterThan(0);
    expect(first.virtualServers).toBe(7);
    expect(first.notes[0]).toMatch(/config asks for ipvs but ipvs is unavailable/);
    const second = await apply('--mode', 'auto');
    expect(second.writes).toBe(0);
    const tables = await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables']);
    expect(tables.stdout).toContain('table inet switchboard');
  });

  it('stdout is the JSON summary without --json too; the readable line goes to stderr', async () => {
    const r = await run('ip', [
      ...['netns', 'exec', ns, path.resolve('bin/switchboard'), 'apply', '--manifests', 'examples/demo'],
      ...['--node', 'node-a', '--mode', 'nftables', '--once', '--state-dir', `/tmp/${ns}`],
    ]);
    const summary = JSON.parse(r.stdout) as Summary;
    expect(summary).toMatchObject({ mode: 'nftables', node: 'node-a', verified: true, virtualServers: 7 });
    expect(summary.notes.some((n) => n.includes('no effect'))).toBe(false); // default scheduler: nothing ignored
    expect(r.stderr).toMatch(
      /^nftables node-a: 7 virtual servers, \d+ real servers, \d+ writes, verified=true, hash /m,
    );
  });

  it('--mode nftables with an IPVS scheduler programs nftables and says the scheduler has no effect', async () => {
    const r = await apply('--mode', 'nftables', '--scheduler', 'sh');
    expect(r.mode).toBe('nftables');
    expect(r.verified).toBe(true);
    expect(r.notes).toContain('scheduler sh has no effect in nftables mode (it balances at random)');
  });

  it('refuses --mode ipvs with a one-line reason (exit 1)', async () => {
    const err = await apply('--mode', 'ipvs').then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/ipvs mode unavailable/);
  });

  it('refuses a --node the manifests do not list (exit 2, one line) and leaves the table as it was', async () => {
    const list = async () =>
      (await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'switchboard'])).stdout;
    await apply('--mode', 'nftables'); // node-a's state is programmed
    const before = await list();
    expect(before).toContain('31000'); // node-a's NodePort: what a typo in --node would have removed
    const err = await run('ip', [
      'netns',
      'exec',
      ns,
      path.resolve('bin/switchboard'),
      'apply',
      ...['--manifests', 'examples/demo', '--node', 'node-typo', '--mode', 'nftables', '--once'],
      ...['--state-dir', `/tmp/${ns}`],
    ]).then(
      () => undefined,
      (e: { code: number; stderr: string; stdout: string }) => e,
    );
    expect(err).toMatchObject({ code: 2, stdout: '' });
    expect(err?.stderr).toMatch(
      /^switchboard: --node node-typo: no Node of that name in examples\/demo \(nodes: node-a, node-b, node-c\)\n$/,
    );
    expect(await list()).toBe(before);
  });

  it('refuses a directory with no Service (exit 2) and leaves the table; --allow-empty empties it', async () => {
    const list = async () =>
      (await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'switchboard'])).stdout;
    const empty = `/tmp/${ns}-empty`;
    const allRejected = `/tmp/${ns}-rejected`;
    mkdirSync(empty, { recursive: true });
    mkdirSync(allRejected, { recursive: true });
    // a Service without its name: rejected alone, so the directory yields nothing
    writeFileSync(`${allRejected}/svc.yaml`, 'apiVersion: v1\nkind: Service\nmetadata: {}\nspec: {}\n');
    const applyFrom = (dir: string, ...extra: string[]) =>
      run('ip', [
        ...['netns', 'exec', ns, path.resolve('bin/switchboard'), 'apply', '--manifests', dir, '--node', 'node-a'],
        ...['--mode', 'nftables', '--once', '--json', '--state-dir', `/tmp/${ns}`, ...extra],
      ]).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: { code: number; stderr: string; stdout: string }) => e,
      );
    try {
      await apply('--mode', 'nftables');
      const before = await list();
      expect(before).toContain('31000');
      const refused = await applyFrom(empty);
      expect(refused).toMatchObject({ code: 2, stdout: '' });
      expect(refused.stderr).toBe(
        `switchboard: no Service in ${empty}: applying it would remove every service this host proxies; pass --allow-empty to mean that (switchboard cleanup removes everything Switchboard programmed)\n`,
      );
      const rejected = await applyFrom(allRejected);
      expect(rejected).toMatchObject({ code: 2, stdout: '' });
      expect(rejected.stderr).toMatch(/^rejected .*svc\.yaml.*\n/);
      expect(rejected.stderr).toMatch(new RegExp(`^switchboard: no Service in ${allRejected} \\(1 rejected\\): `, 'm'));
      expect(await list()).toBe(before);
      const emptied = await applyFrom(empty, '--allow-empty');
      expect(emptied.code).toBe(0);
      expect(JSON.parse(emptied.stdout)).toMatchObject({ virtualServers: 0, verified: true });
      expect(await list()).not.toContain('31000');
    } finally {
      rmSync(empty, { recursive: true, force: true });
      rmSync(allRejected, { recursive: true, force: true });
    }
  });
});
