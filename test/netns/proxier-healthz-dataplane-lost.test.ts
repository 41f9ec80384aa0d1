// The proxier /healthz (:10256) turns 503 as soon as the applier knows its nftables table is gone
// (probe7 C1), not after kube-proxy's 60 s sync timeout, and 200 again once repaired; /livez stays
// 200 throughout. Real processes (support/rollout-lab.ts: nats-server and the planner in a LAN
// namespace, one nftables applier in its node namespace), curl from the LAN namespace as a load
// balancer would probe. To hold the fault open long enough to look at (the drift resync repairs
// within a second otherwise), our table is replaced, in one transaction, by an empty
// `inet switchboard` table with `flags owner` held by an `nft -i` process: only that process's
// socket may change it, so every repair fails until it exits (the kernel then drops its table).
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNs } from './support/netns-lab.ts';
import { RolloutLab } from './support/rollout-lab.ts';

const lab = new RolloutLab();
const isRoot = process.getuid?.() === 0;
let holder: ChildProcess | undefined;

/** GET from the LAN namespace: status and parsed body, or undefined when nothing answers. */
async function get(path: string): Promise<{ status: number; body: { reason?: string } } | undefined> {
  const url = `http://${lab.nodes[0]!.ip}:10256${path}`;
  const out = await inNs(lab.lan, 'curl', ['-s', '--max-time', '2', '-w', '\n%{http_code}', url]).catch(() => '');
  const nl = out.lastIndexOf('\n');
  if (nl < 0) return undefined;
  return { status: Number(out.slice(nl + 1)), body: JSON.parse(out.slice(0, nl)) as { reason?: string } };
}
const tables = () => inNs(lab.nodes[0]!.ns, 'nft', ['list', 'tables']);

// Skipped unless root: `ip netns add` and nft inside a namespace need CAP_SYS_ADMIN and
// CAP_NET_ADMIN (CI runs as root, so it runs there).
describe.skipIf(!isRoot)('proxier /healthz when the dataplane is lost (needs root for ip netns)', () => {
  beforeAll(async () => {
    await lab.startOneNodeCluster();
    lab.startApplier('node-1', ['--resync-interval', '3s']);
  }, 120_000);
  afterAll(async () => {
    if (holder && holder.exitCode === null) holder.kill('SIGKILL');
    await lab.cleanup();
  }, 60_000);

  it('503 naming the lost table while it cannot be repaired, /livez 200; 200 once repaired', async () => {
    await lab.until(
      'our table and /healthz 200',
      async () => /inet switchboard/.test(await tables()) && (await get('/healthz'))?.status === 200,
      60_000,
    );
    holder = spawn('ip', ['netns', 'exec', lab.nodes[0]!.ns, 'nft', '-i'], { stdio: ['pipe', 'ignore', 'ignore'] });
    holder.stdin!.write('delete table inet switchboard; add table inet switchboard { flags owner; }\n');
    const down = await lab.until(
      '/healthz 503',
      async () => {
        const r = await get('/healthz');
        return r?.status === 503 && r;
      },
      10_000, // kube-proxy's meaning alone would answer 200 for 60 s (its sync timeout)
    );
    expect(down.body.reason).toMatch(
      /^dataplane not forwarding: (table switchboard deleted|base chain \S+ of table switchboard deleted|probe: )/,
    );
    expect((await get('/livez'))?.status).toBe(200);
    // still held: every repair fails (EPERM), the answer stays 503
    await lab.until('a failed repair', async () => /resync failed/.test(lab.log('applier-node-1')), 15_000);
    expect((await get('/healthz'))?.status).toBe(503);

    holder.stdin!.end(); // nft exits; the kernel drops its owner table; the applier repairs ours
    await lab.until('/healthz 200 again', async () => (await get('/healthz'))?.status === 200, 30_000);
    expect(await inNs(lab.nodes[0]!.ns, 'nft', ['list', 'chain', 'inet', 'switchboard', 'nat-output'])).toMatch(
      /type nat hook output/,
    );
  }, 150_000);
});
