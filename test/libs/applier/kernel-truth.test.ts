// When a node ACKs, its kernel holds what the ACK names. Review findings F2, F7
// (/work/coord/review-findings.md) showed ACKs (so SYNCED nodes) over kernels that held part of
// the version rolled back from (a pin after a failed or unverified apply), or missed what the
// read-back had just found missing (an nftables retry); F1 (a restart over an emptied kernel) is
// in test/services/applier/applier-restart.test.ts, through the service's state file.
// Real nats-server, the real dataplanes over the repo's kernel fakes; the kernel is read at the
// moment the session ACKs.
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { SessionEvent } from '../../../libs/applier/index.ts';
import { contentHash, DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import {
  IpvsDataplane,
  MemoryOwnershipStore,
  ModeFollowingDataplane,
  NftablesDataplane,
  type Dataplane,
} from '../../../libs/dataplane/index.ts';
import { Events, startBusWorld, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';
import { FakeIpvsKernel } from '../../support/fake-ipvs-kernel.ts';
import { FakeNftRunner } from '../../support/fake-nft-runner.ts';
import { LossyIpvsKernel, LossyNftRunner } from '../../support/lossy-kernels.ts';

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

type Ack = Extract<SessionEvent, { type: 'ack' }>;

/** A world with one node, a publisher of versions, and appliers whose kernel is dumped at each ACK. */
async function setup() {
  world = await startBusWorld({ nodes: ['n1'] });
  const w = world;
  const m = new VersionMaker();
  const publish = async (d: Parameters<VersionMaker['next']>[0]) => {
    const v = m.next(d);
    await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await w.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
    return v.delta.version;
  };
  const start = async (dataplane: Dataplane, dump: () => string, o: { resyncIntervalMs?: number } = {}) => {
    const events = new Events<SessionEvent>();
    /** The kernel as it was when each ACK went out, by version. */
    const atAck = new Map<number, string>();
    const a = await w.startApplier('n1', {
      dataplane,
      retryMs: 100,
      ...o,
      onEvent: (e) => {
        if (e.type === 'ack') atAck.set(e.ack.version, dump());
        events.push(e);
      },
    });
    const ackOf = async (version: number) =>
      (await events.waitFor((e) => e.type === 'ack' && e.ack.version === version, `ack ${version}`)) as Ack;
    const nackOf = (version: number) =>
      events.waitFor((e) => e.type === 'nack' && e.nack.version === version, `nack ${version}`);
    return { ...a, events, atAck, ackOf, nackOf };
  };
  return { publish, start };
}

const ipvs = (kernel: FakeIpvsKernel, store = new MemoryOwnershipStore()) =>
  new IpvsDataplane({ kernel, store, clock: () => Date.now(), kernelRelease: '6.1.0', registry: new Registry() });
const nft = (runner: FakeNftRunner) => new NftablesDataplane({ runner, changeNotifications: false });
const nftDump = (runner: FakeNftRunner) => () => runner.dump('inet', 'switchboard');

describe('a pin back to the last good content after a failed apply (F2)', () => {
  it('ipvs, the apply threw half-way: the ACK of the pin comes after the kernel is back at v1', async () => {
    const { publish, start } = await setup();
    const kernel = new FakeIpvsKernel();
    const a = await start(ipvs(kernel), () => kernel.ipvsadmSave());
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const ack1 = await a.ackOf(1);
    // v2 adds svc-2; the kernel refuses its real servers: the virtual server stays, empty
    kernel.refuse({ match: (op) => op.kind === 'real-server' && op.vs.address === '10.96.0.3', errno: 'ENOMEM' });
    await publish({ upsertServices: [service(2)] });
    await a.nackOf(2);
    expect(kernel.ipvsadmSave()).toContain('-A -t 10.96.0.3:80');
    kernel.clearRefusals();
    const v3 = await publish({ removeServices: ['ns/svc-2'] }); // v1's content again
    const ack3 = await a.ackOf(v3);
    expect(ack3.ack.nodeStateHash).toBe(ack1.ack.nodeStateHash);
    expect(ack3.skipped).toBe(false);
    expect(a.atAck.get(v3)).toBe(a.atAck.get(1));
  });

  it('ipvs, the apply did not verify: the pin is applied, and no resync programs the version rolled back from', async () => {
    const { publish, start } = await setup();
    const kernel = new LossyIpvsKernel();
    const a = await start(ipvs(kernel), () => kernel.ipvsadmSave());
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await a.ackOf(1);
    kernel.loseRealServersOf = '10.96.0.3';
    await publish({ upsertServices: [service(2)] });
    expect(await a.nackOf(2)).toMatchObject({ nack: { error: expect.stringMatching(/^apply not verified/) } });
    const v3 = await publish({ removeServices: ['ns/svc-2'] });
    await a.ackOf(v3);
    expect(a.atAck.get(v3)).toBe(a.atAck.get(1));
    const mark = a.events.mark();
    a.session.requestResync();
    expect(await a.events.waitFor((e) => e.type === 'resync', 'resync after the pin', { from: mark })).toMatchObject({
      kernelWrites: 0,
      verified: true,
    });
    expect(kernel.ipvsadmSave()).toBe(a.atAck.get(1));
  });
});

describe('nftables: the retry of an apply whose read-back differed (F7)', () => {
  it('is not ACKed until the table holds what was missing', async () => {
    const { publish, start } = await setup();
    const runner = new LossyNftRunner();
    const a = await start(nft(runner), nftDump(runner));
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await a.ackOf(1);
    runner.loseElementsOf = '10.96.0.3';
    await publish({ upsertServices: [service(2)] });
    await a.nackOf(2);
    const ack2 = await a.ackOf(2);
    expect(ack2.ack.kernelWrites).toBeGreaterThan(0);
    expect(a.atAck.get(2)).toContain('10.96.0.3 . tcp . 80');
  });
});

describe('a config rollback after a failed apply (F8, the session part)', () => {
  it('the target equal to the last applied one is applied again and ACKed: the failed attempt may have changed the kernel', async () => {
    const { publish } = await setup();
    const w = world!;
    const cfg = { ...DEFAULT_PROXY_CONFIG, scheduler: 'wrr' };
    await w.targets.putConfigRevision({
      revision: 1,
      config: cfg,
      hash: contentHash(cfg),
      reason: 'wrr',
      createdAt: 'x',
    });
    const a = await w.startApplier('n1', { retryMs: 60_000 });
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await w.received.waitFor((e) => e.kind === 'ack' && e.v.configRevision === 0, 'ack (1,0)');
    expect(a.dataplane.applies).toBe(1);
    a.dataplane.failNext = 'EPERM half-way';
    await w.targets.setDefaultTarget({ version: 1, configRevision: 1 });
    await w.received.waitFor((e) => e.kind === 'nack' && e.v.configRevision === 1, 'nack (1,1)');
    const mark = w.received.mark();
    await w.targets.setDefaultTarget({ version: 1, configRevision: 0 }); // the operator rolls back
    const ack = await w.received.waitFor((e) => e.kind === 'ack' && e.v.configRevision === 0, 'ack of the rollback', {
      from: mark,
    });
    expect(ack.v).toMatchObject({ version: 1, configRevision: 0 });
    expect(a.dataplane.applies).toBe(2);
    expect(a.dataplane.last?.virtualServers.map((v) => v.scheduler)).toEqual(['rr']);
  });
});

describe('a mode switch that fails after the old mode was removed (F8)', () => {
  /** ModeFollowing over the real dataplanes; nftables' recheck after the ipvs removal reports drift once. */
  async function switching(retryMs: number) {
    const { publish } = await setup();
    const w = world!;
    const nftCfg = { ...DEFAULT_PROXY_CONFIG, mode: 'nftables' as const };
    await w.targets.putConfigRevision({
      revision: 1,
      config: nftCfg,
      hash: contentHash(nftCfg),
      reason: 'mode nftables',
      createdAt: 'x',
    });
    const kernel = new FakeIpvsKernel();
    const store = new MemoryOwnershipStore();
    const runner = new FakeNftRunner();
    let recheckFails = true;
    const dp = new ModeFollowingDataplane({
      ipvsAvailable: true,
      open: async (mode) => {
        if (mode === 'ipvs') return ipvs(kernel, store);
        const n = nft(runner);
        const resync = n.resync.bind(n);
        n.resync = async () => {
          if (!recheckFails) return resync();
          recheckFails = false;
          return { kernelWrites: 0, verified: false, durationMs: 0, notes: ['recheck: drift'] };
        };
        return n;
      },
    });
    const dump = () => `${kernel.ipvsadmSave()}|${runner.dump('inet', 'switchboard')}`;
    const events = new Events<SessionEvent>();
    const atAck = new Map<string, string>();
    await w.startApplier('n1', {
      dataplane: dp,
      retryMs,
      onEvent: (e) => {
        if (e.type === 'ack') atAck.set(`${e.ack.version}/${e.ack.configRevision}`, dump());
        events.push(e);
      },
    });
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await events.waitFor((e) => e.type === 'ack' && e.ack.configRevision === 0, 'ack (1,0)');
    const ipvsOnly = atAck.get('1/0')!;
    expect(ipvsOnly).toMatch(/^-A -t 10\.96\.0\.2:80[^|]*\|$/);
    await w.targets.setDefaultTarget({ version: 1, configRevision: 1 });
    await events.waitFor((e) => e.type === 'nack' && e.nack.configRevision === 1, 'nack (1,1)');
    return { w, dp, events, atAck, ipvsOnly, kernel, runner };
  }

  it('the rollback to the ipvs revision switches back before it is ACKed: IPVS programmed, the nftables table gone', async () => {
    const { w, dp, events, atAck, ipvsOnly } = await switching(60_000);
    expect(dp.mode).toBe('nftables'); // what serves now, and what heartbeats report
    const mark = events.mark();
    await w.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    await events.waitFor((e) => e.type === 'ack' && e.ack.configRevision === 0, 'ack of the rollback', { from: mark });
    expect(atAck.get('1/0')).toBe(ipvsOnly);
    expect(dp.mode).toBe('ipvs');
  });

  it('without a rollback, the retry ACKs the nftables revision with IPVS removed', async () => {
    const { events, atAck } = await switching(100);
    await events.waitFor((e) => e.type === 'ack' && e.ack.configRevision === 1, 'ack (1,1) on retry');
    const [ipvsPart, nftPart] = atAck.get('1/1')!.split('|');
    expect(ipvsPart).toBe('');
    expect(nftPart).toContain('10.96.0.2 . tcp . 80');
  });
});
