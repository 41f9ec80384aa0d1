// node10 L1 with real processes: nats-server and the planner in a LAN namespace, an nftables
// applier in the node's namespace (support/rollout-lab.ts), no periodic resync and no re-probe
// within the test. Its change-notification listener child is killed by PID (SIGKILL, as the OOM
// killer would); the supervisor restarts it (500 ms, then 1 s), and says so once each way on
// stderr. Our table deleted after a restart is noticed by the new child and repaired; a chain
// flushed while the child is dead is repaired by the resync that follows the restart. Before, a
// dead child stayed dead until the next periodic resync: nothing was repaired here.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutLab } from './support/rollout-lab.ts';

const pexec = promisify(execFile);
const lab = new RolloutLab();
const isRoot = process.getuid?.() === 0;
const nft = (...args: string[]) =>
  pexec('ip', ['netns', 'exec', lab.nodes[0]!.ns, 'nft', ...args], { encoding: 'utf8' });
const log = () => lab.log('applier-node-1');
/** Lines of the supervisor (stderr, in the same log file as the applier's JSON lines). */
const said = (what: 'down' | 'back') =>
  log()
    .split('\n')
    .filter((l) => l.startsWith(`nftables change-notification listener ${what}`));

/** PIDs of the processes below `root` whose command line is the listener child's (`-e` code joining the group). */
function listenerPids(root: number): number[] {
  const parent = new Map<number, number>();
  const isListener = new Set<number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('addMembership')) isListener.add(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  const below = (p: number): boolean => {
    for (let q = parent.get(p); q !== undefined && q > 1; q = parent.get(q)) if (q === root) return true;
    return false;
  };
  return [...isListener].filter(below);
}

// Skipped unless root: namespaces, veths and nft inside them need CAP_SYS_ADMIN/CAP_NET_ADMIN (CI runs as root).
describe.skipIf(!isRoot)('nftables listener supervision (node10 L1, needs root for ip netns)', () => {
  let applierPid = 0;
  beforeAll(async () => {
    await lab.startOneNodeCluster();
    const p = lab.startApplier('node-1', ['--resync-interval', '10m', '--probe-interval', '600000']);
    applierPid = p.pid!;
    await lab.until('the first ACK', async () => log().includes('"msg":"applied"'), 60_000);
  }, 90_000);
  afterAll(async () => {
    await lab.cleanup();
  }, 60_000);

  it('a killed listener is restarted; our table deleted afterwards, and a chain flushed while it was dead, are repaired', async () => {
    const first = await lab.until('the listener child', async () => listenerPids(applierPid)[0], 10_000);
    process.kill(first, 'SIGKILL');
    await lab.until('the restart', async () => said('back').length === 1, 10_000);
    const second = listenerPids(applierPid)[0];
    expect(second).toBeGreaterThan(0);
    expect(second).not.toBe(first);
    expect(said('down')).toEqual([
      'nftables change-notification listener down (notification listener exited (SIGKILL)): restarting in 500 ms; a full resync follows its restart',
    ]);

    // After the restart: the new child hears the table go, and the applier puts it back.
    await nft('delete', 'table', 'inet', 'switchboard');
    await lab.until(
      'the table back',
      async () => (await nft('list', 'chain', 'inet', 'switchboard', 'services')).stdout.includes('vmap'),
      15_000,
    );

    // While the child is dead (it dies again at once: the restart waits 1 s this time), a chain of
    // ours is flushed; the resync the restart asks for reads the whole table and refills it.
    process.kill(second!, 'SIGKILL');
    await nft('flush', 'chain', 'inet', 'switchboard', 'services');
    await lab.until('the second restart', async () => said('back').length === 2, 10_000);
    await lab.until(
      'the services chain refilled',
      async () => (await nft('list', 'chain', 'inet', 'switchboard', 'services')).stdout.includes('vmap'),
      15_000,
    );
    expect(said('down')).toHaveLength(2);
    expect(said('down')[1]).toMatch(/restarting in 1000 ms/);
    expect(said('back')[1]).toMatch(
      /^nftables change-notification listener back after \d+ ms \(1 restart attempt; lost: notification listener exited \(SIGKILL\)\): full resync$/,
    );
  }, 60_000);
});
