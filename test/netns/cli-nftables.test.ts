// The CLI surfaces of nftables mode, against a real kernel in a namespace of our own:
// `plan --format nft` output loads with `nft -f`, `cleanup --mode nftables` removes our table only.
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inNs, sh } from './support/netns-lab.ts';

const NS = `sbn${process.pid % 100000}cli`;
const cli = (...args: string[]) => spawnSync('bin/switchboard', args, { encoding: 'utf8' });

beforeEach(async () => {
  await sh('ip', ['netns', 'add', NS]);
});
afterEach(async () => {
  await sh('ip', ['netns', 'del', NS]).catch(() => undefined);
});

describe('switchboard CLI, nftables mode', () => {
  it('plan --format nft prints a table that nft loads as is', async () => {
    const r = cli('plan', '--manifests', 'examples/demo', '--node', 'node-a', '--format', 'nft');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^table inet switchboard \{/);
    await inNs(NS, 'nft', ['-f', '-'], r.stdout);
    const listed = await inNs(NS, 'nft', ['list', 'map', 'inet', 'switchboard', 'service-ips']);
    expect(listed).toMatch(/ : goto service-/);
  });

  it('cleanup --mode nftables deletes our table and nothing else', async () => {
    await inNs(
      NS,
      'nft',
      ['-f', '-'],
      'add table inet switchboard\nadd chain inet switchboard c\nadd table ip foreign\nadd chain ip foreign c\n',
    );
    const r = cli('cleanup', '--mode', 'nftables', '--netns', NS, '--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ mode: 'nftables', result: { kernelWrites: 1, verified: true } }]);
    const tables = await inNs(NS, 'nft', ['list', 'tables']);
    expect(tables.trim()).toBe('table ip foreign');
    expect(cli('cleanup', '--mode', 'nftables', '--netns', NS).status).toBe(0); // idempotent
  });

  it('cleanup rejects an unknown mode with exit 2', () => {
    const r = cli('cleanup', '--mode', 'iptables');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/iptables/);
  });
});
