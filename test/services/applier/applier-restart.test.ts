// A restarted applier finds its --state-dir (applied-<node>.json, the ipvs ownership record)
// but not necessarily the kernel state it describes: a node reboot empties IPVS and nf_tables,
// `ipvsadm -C` or `nft delete table` may run while it is down. Review finding F1: it used to ACK
// from the state file without touching the kernel (SYNCED over an empty kernel, and the periodic
// resync, with nothing applied by this process, "verified" nothing forever). Now the first apply
// of every process reads the kernel back in full: nothing written over an unchanged kernel,
// everything reprogrammed before the ACK over an emptied one. The service with its real state
// directory, a real nats-server, the real dataplanes over the repo's kernel fakes.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import {
  IpvsDataplane,
  MemoryOwnershipStore,
  NftablesDataplane,
  type Dataplane,
} from '../../../libs/dataplane/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { nodeCred, startBusWorld, type BusWorld } from '../../libs/bus/bus-harness.ts';
import { node, service, VersionMaker } from '../../libs/bus/fixtures.ts';
import { FakeIpvsKernel } from '../../support/fake-ipvs-kernel.ts';
import { FakeNftRunner } from '../../support/fake-nft-runner.ts';

let world: BusWorld | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await world?.close();
  world = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function seeded(): Promise<BusWorld> {
  const w = await startBusWorld({ nodes: ['n1'] });
  world = w;
  const m = new VersionMaker();
  const v = m.next({ upsertServices: [service(1), service(2)], upsertNodes: [node('n1')] });
  await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  await w.targets.setDefaultTarget({ version: 1, configRevision: 0 });
  return w;
}

/** Runs one applier process over `dataplane` until it ACKs version 1; the ACK and the kernel when the planner got it. */
async function boot(
  w: BusWorld,
  stateDir: string,
  mode: 'ipvs' | 'nftables',
  dataplane: Dataplane,
  dump: () => string,
) {
  const mark = w.received.mark();
  const svc = await startApplierService({
    node: 'n1',
    nats: w.server.url,
    mode,
    stateDir,
    dataplane,
    auth: nodeCred('n1'),
    verifier: w.verifier,
    heartbeatMs: 0,
    probe: { sample: 0 },
    logger: pino({ level: 'silent' }),
  });
  try {
    const got = await w.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack 1', { from: mark });
    if (got.kind !== 'ack') throw new Error('not an ACK');
    return { ack: got.v, kernel: dump() };
  } finally {
    await svc.stop();
  }
}

const stateDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'sb-restart-'));
  dirs.push(d);
  return d;
};
const ipvs = (kernel: FakeIpvsKernel, store: MemoryOwnershipStore) =>
  new IpvsDataplane({ kernel, store, clock: () => Date.now(), kernelRelease: '6.1.0', registry: new Registry() });
const nft = (runner: FakeNftRunner) => new NftablesDataplane({ runner, changeNotifications: false });

describe('a restarted applier checks the kernel before it ACKs (F1)', () => {
  it('ipvs: zero writes over an unchanged kernel; a rebooted (emptied) one is reprogrammed before the ACK', async () => {
    const w = await seeded();
    const dir = stateDir();
    const kernel = new FakeIpvsKernel();
    const store = new MemoryOwnershipStore(); // the ownership record in --state-dir survives too
    const first = await boot(w, dir, 'ipvs', ipvs(kernel, store), () => kernel.ipvsadmSave());
    expect(first.kernel).toContain('-A -t 10.96.0.3:80');

    const writes = kernel.writes;
    const restart = await boot(w, dir, 'ipvs', ipvs(kernel, store), () => kernel.ipvsadmSave());
    expect(restart.ack.kernelWrites).toBe(0);
    expect(kernel.writes).toBe(writes);

    const rebooted = new FakeIpvsKernel();
    const reboot = await boot(w, dir, 'ipvs', ipvs(rebooted, store), () => rebooted.ipvsadmSave());
    expect(reboot.ack.kernelWrites).toBeGreaterThan(0);
    expect(reboot.kernel).toBe(first.kernel);
  });

  it('nftables: zero writes adopting an unchanged table; a table gone while it was down is loaded before the ACK', async () => {
    const w = await seeded();
    const dir = stateDir();
    const runner = new FakeNftRunner();
    const dump = (r: FakeNftRunner) => () => r.dump('inet', 'switchboard');
    const first = await boot(w, dir, 'nftables', nft(runner), dump(runner));
    expect(first.kernel).toContain('10.96.0.3 . tcp . 80');

    const committed = runner.committed;
    const restart = await boot(w, dir, 'nftables', nft(runner), dump(runner));
    expect(restart.ack.kernelWrites).toBe(0);
    expect(runner.committed).toBe(committed);

    const emptied = new FakeNftRunner();
    const reboot = await boot(w, dir, 'nftables', nft(emptied), dump(emptied));
    expect(reboot.ack.kernelWrites).toBeGreaterThan(0);
    expect(reboot.kernel).toBe(first.kernel);
  });
});
