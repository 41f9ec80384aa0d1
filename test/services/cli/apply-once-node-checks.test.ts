// `apply --once` runs the long-running applier's node checks (node-preflight.ts,
// kube-proxy-leftover-check.ts), in a namespace this test makes:
//  - nftables mode on a kernel older than 5.13 is refused before the kernel is touched: the
//    kernel here is new, so the run is made under `setarch --uname-2.6` (uname, and so
//    os.release(), then says 2.6.x), a real old-kernel answer without a test hook;
//  - a kube-proxy nftables table beside ours fails the run (exit 1, the report naming the table
//    and --take-over-kube-proxy as the one error line, after the JSON summary); with the flag the
//    table goes and the run passes;
//  - another table's forward drop policy (docker's) is named in the notes, the run passes.
import { execFile } from 'node:child_process';
import { arch } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ns = `sb-apply-chk-${process.pid}`;
const isRoot = process.getuid?.() === 0;
const KUBE_PROXY_TABLE = `table ip kube-proxy {
\tchain nat-output {
\t\ttype nat hook output priority -100; policy accept;
\t\tip daddr 10.96.0.10 tcp dport 80 dnat to 10.50.9.9:8080
\t}
}
`;

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}
async function apply(prefix: string[], ...extra: string[]): Promise<Outcome> {
  const args = [
    ...['netns', 'exec', ns, ...prefix, path.resolve('bin/switchboard'), 'apply', '--manifests', 'examples/demo'],
    ...['--node', 'node-a', '--mode', 'nftables', '--once', '--json', '--state-dir', `/tmp/${ns}`, ...extra],
  ];
  return run('ip', args).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: Outcome) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}
const tables = async () => (await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'])).stdout;

// Skipped unless root: `ip netns add` and nft inside a namespace need CAP_SYS_ADMIN and
// CAP_NET_ADMIN (CI runs as root, so it runs there).
describe.skipIf(!isRoot)('apply --once runs the node preflight and the kube-proxy leftover check', () => {
  beforeAll(async () => {
    await run('ip', ['netns', 'add', ns]);
  });
  afterAll(async () => {
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await run('rm', ['-rf', `/tmp/${ns}`]);
  });

  it('refuses nftables mode on a kernel older than 5.13 (exit 1, one line), the kernel untouched', async () => {
    const r = await apply(['setarch', arch() === 'x64' ? 'x86_64' : 'aarch64', '--uname-2.6']);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(
      /^switchboard: nftables mode needs kernel 5\.13 or newer \(as kube-proxy's nftables mode\), this node runs 2\.6\.\S+: use --mode ipvs, or upgrade the kernel\n$/m,
    );
    expect(await tables()).toBe('');
  });

  it("fails on kube-proxy's competing table, naming it and the flag; --take-over-kube-proxy removes it", async () => {
    const load = run('ip', ['netns', 'exec', ns, 'nft', '-f', '-']);
    load.child.stdin?.end(KUBE_PROXY_TABLE);
    await load;
    const r = await apply([]);
    expect(r.code).toBe(1);
    const summary = JSON.parse(r.stdout) as { verified: boolean; notes: string[] };
    expect(summary.verified).toBe(true); // our state is programmed; kube-proxy's competes with it
    expect(summary.notes.join('\n')).toMatch(/kube-proxy's rules compete .*table ip kube-proxy/);
    expect(r.stderr).toMatch(
      /^switchboard: kube-proxy's rules compete with this node's \(table ip kube-proxy: .*restart the applier with --take-over-kube-proxy.*\n$/m,
    );
    const taken = await apply([], '--take-over-kube-proxy');
    expect(taken.code).toBe(0);
    expect((JSON.parse(taken.stdout) as { notes: string[] }).notes).toContain(
      "take-over: removed kube-proxy's tables ip kube-proxy",
    );
    expect(await tables()).toBe('table inet switchboard\n');
  });

  it("names another table's forward drop policy in the notes (a warning: exit 0)", async () => {
    await run('ip', ['netns', 'exec', ns, 'iptables-nft', '-P', 'FORWARD', 'DROP']); // as dockerd does
    const r = await apply([]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { notes: string[] }).notes).toEqual([
      'adopted existing table',
      expect.stringMatching(
        /may be dropped on this node by table ip filter chain FORWARD \(forward hook, policy drop\)/,
      ),
    ]);
  });
});
