// The data-path probe catching a revision that programs cleanly but breaks forwarding (issue 16
// item 4), with real processes only: nats-server, the planner and `ctl` in a LAN namespace, an
// nftables applier in each node's namespace, real pods answering TCP. See support/rollout-lab.ts
// for the topology, in which masqueradeAll drops every reply to a connection the node makes.
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labManifests as manifests, RolloutLab } from './support/rollout-lab.ts';

const lab = new RolloutLab();

interface NodeRow {
  node: string;
  status: string;
  appliedConfigRevision: number | null;
  health: {
    verdict: string;
    reason: string;
    configRevision: number;
    probe: { attempted: number; succeeded: number; failed: number; unreachable: number } | null;
  } | null;
}
const status = async (): Promise<{
  nodes: NodeRow[];
  rollout: Record<string, unknown> | null;
  config: { defaultRevision: number };
}> => {
  const r = await lab.ctl('status', '-o', 'json');
  if (r.code !== 0) throw new Error(`ctl status: ${r.stderr}`);
  return JSON.parse(r.stdout);
};
const row = async (name: string) => (await status()).nodes.find((n) => n.node === name);
async function until<T>(f: () => Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}\n--- planner log ---\n${lab.log('planner').slice(-3000)}\n--- applier node-1 ---\n${lab.log('applier-node-1').slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 300));
  }
}

beforeAll(async () => {
  await lab.start(['node-1', 'node-2']);
  const dir = join(lab.work, 'manifests');
  mkdirSync(dir);
  writeFileSync(join(dir, 'cluster.yaml'), manifests(lab.nodes));
  writeFileSync(join(lab.work, 'config.yaml'), 'mode: nftables\n');
  lab.startNats();
  lab.startPlanner(dir, join(lab.work, 'config.yaml'));
  for (const n of lab.nodes) startApplier(n.name);
}, 120_000);

const appliers = new Map<string, ChildProcess>();
function startApplier(name: string): void {
  appliers.set(
    name,
    lab.startApplier(name, ['--probe-interval', '1000', '--probe-timeout', '1000', '--resync-interval', '1s']),
  );
}
/** Stops a node's applier by its PID (SIGTERM: fail-static, its nftables table stays) and waits for it to exit. */
async function stopApplier(name: string): Promise<void> {
  const p = appliers.get(name)!;
  if (p.exitCode !== null || p.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
}
const gates = () => {
  const audit = spawnSync(
    process.execPath,
    ['bin/switchboard', 'audit', '--db', join(lab.work, 'log.db'), 'ops', '-o', 'json'],
    { encoding: 'utf8' },
  );
  if (audit.status !== 0) throw new Error(`audit ops: ${audit.stderr}`);
  return (JSON.parse(audit.stdout) as { kind: string; reason: string; params: { gate?: string } }[]).filter(
    (o) => o.params.gate,
  );
};
afterAll(async () => {
  await lab.cleanup();
}, 60_000);

describe('a revision that breaks forwarding on the canary (nftables appliers in namespaces, real pods)', () => {
  it('is caught by the probe in wave 1 and rolled back before wave 2 starts', async () => {
    // Revision 1 forwards: each node's probe reaches its local pod through its ClusterIP; the other
    // node's pod does not answer directly (pods route only the pod network), so it is skipped.
    for (const n of lab.nodes) {
      const h = await until(
        async () => {
          const r = await row(n.name);
          return r?.status === 'SYNCED' && r.health?.verdict === 'healthy' && r;
        },
        90_000,
        `${n.name} SYNCED and healthy`,
      );
      expect(h.health!.probe).toMatchObject({ attempted: 1, succeeded: 1, failed: 0, unreachable: 1 });
      expect(h.health!.reason).toMatch(/^probe: 1\/1 virtual server\(s\) answered through the dataplane/);
    }
    const r = await lab.ctl(
      'config',
      'set',
      'masqueradeAll=true',
      '--waves',
      '1,100%',
      '--bake',
      '20s',
      '--wait',
      '--timeout',
      '120s',
      '--reason',
      'masquerade everything',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /halted at wave 1\/2, .*node-1 failed: unhealthy: probe: 1 of 1 virtual server\(s\) failed through the dataplane: tcp\/10\.100\.0\.11:80: no answer within 1000ms \(endpoint 10\.50\.1\.10:8080 answers directly\)/,
    );
    const st = await status();
    expect(st.rollout).toMatchObject({ status: 'halted', wave: 1, haltedBy: { node: 'node-1' } });
    expect(st.config.defaultRevision).toBe(1);
    // node-2 was never moved (wave 2 never started); node-1 goes back to revision 1 and forwards again.
    expect((await row('node-2'))!.appliedConfigRevision).toBe(1);
    const back = await until(
      async () => {
        const n1 = await row('node-1');
        return (
          n1?.appliedConfigRevision === 1 && n1.health?.verdict === 'healthy' && n1.health.configRevision === 1 && n1
        );
      },
      60_000,
      'node-1 back on revision 1 and healthy',
    );
    expect(back.status).toBe('SYNCED');
    const shown = await lab.ctl('rollout', 'status');
    expect(shown.stdout).toMatch(/^rollout of config revision 2 \(from 1\): halted, wave 1\/2/);
    expect(shown.stdout).toMatch(/halted by node-1: unhealthy: probe: 1 of 1/);
    // The gate decision is an operation in the log, with its reason.
    const ops = gates();
    expect(ops.map((o) => o.params.gate)).toEqual(['halt']);
    expect(ops[0]!.reason).toMatch(
      /^rollout halted: 1 failed node\(s\), 0 tolerated by --max-failures 0: node-1 \(unhealthy: probe: 1 of 1/,
    );
  }, 240_000);

  it('a silent node trips the wave timeout: the rollout halts and the canary that took the revision goes back', async () => {
    await stopApplier('node-2');
    // tcpTimeout does not change what nftables mode programs: a harmless revision, node-1 ACKs it healthy.
    const r = await lab.ctl(
      'config',
      'set',
      'tcpTimeout=900',
      '--waves',
      '1,100%',
      '--wave-timeout',
      '8s',
      '--wait',
      '--timeout',
      '120s',
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /rollout of revision 3 halted at wave 2\/2, .*node-2 failed: no ACK of revision 3 within the wave timeout of 8s/,
    );
    expect(gates().map((o) => o.params.gate)).toEqual(['halt', 'advance', 'timeout']);
    await until(async () => (await row('node-1'))?.appliedConfigRevision === 1, 60_000, 'node-1 back on revision 1');
  }, 180_000);

  it('a pause gate holds wave 2 until promote, then the revision becomes the default on every node', async () => {
    startApplier('node-2');
    await until(
      async () => {
        const r = await row('node-2');
        return r?.status === 'SYNCED' && r.appliedConfigRevision === 1 && r.health?.verdict === 'healthy';
      },
      90_000,
      'node-2 back and healthy',
    );
    const r = await lab.ctl('rollout', '--config-revision', '3', '--waves', '1,100%', '--pause-before', '2');
    expect(r.code).toBe(0);
    await until(
      async () => {
        const st = await status();
        return st.rollout?.waitingForPromote === 2;
      },
      60_000,
      'the rollout waiting at the gate',
    );
    const shown = await lab.ctl('rollout', 'status');
    expect(shown.stdout).toMatch(/waiting before wave 2: continue with `ctl rollout --promote`/);
    expect(shown.stdout).toMatch(/ {2}node-1 +SYNCED +config 3 +healthy: probe: 1\/1/);
    // Held: a while later node-2 still runs revision 1.
    await new Promise((res) => setTimeout(res, 3000));
    expect((await row('node-2'))!.appliedConfigRevision).toBe(1);
    expect((await lab.ctl('rollout', '--promote', '--reason', 'canary healthy')).code).toBe(0);
    await until(
      async () => {
        const st = await status();
        return (
          st.config.defaultRevision === 3 &&
          st.nodes.every((n) => n.appliedConfigRevision === 3 && n.health?.verdict === 'healthy')
        );
      },
      90_000,
      'revision 3 on every node, healthy',
    );
    expect(
      gates()
        .map((o) => o.params.gate)
        .slice(-3),
    ).toEqual(['gate', 'promote', 'complete']);
  }, 240_000);

  it("the applier's periodic resync repairs what another program did to its table (deleted on node-2)", async () => {
    const ns = lab.nodes.find((x) => x.name === 'node-2')!.ns;
    const table = () =>
      execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', 'switchboard'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'], // "No such file or directory" while it is gone
      });
    await until(async () => (await row('node-2'))?.status === 'SYNCED', 60_000, 'node-2 SYNCED');
    const before = table();
    execFileSync('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'switchboard']);
    // No new version or config is published: only the resync (--resync-interval 1s) can bring it back.
    await until(async () => table() === before, 30_000, "node-2's table as it was, back from the resync");
    // the log line follows the table's return (the resync reads it back first): waited for, not raced
    await until(
      async () => /"msg":"resync repaired drift"/.test(lab.log('applier-node-2')),
      10_000,
      "node-2's log of the repair",
    );
  }, 60_000);
});
