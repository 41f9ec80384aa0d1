// After an apply whose read-back differed, a dataplane must not treat the state it attempted as
// programmed: its resync reference (what resync repairs towards) stays the last verified state,
// and (nftables) the next apply plans against a fresh read-back instead of the doubtful state.
// Review findings F2b and F7 (/work/coord/review-findings.md): before, ipvs's resync finished
// programming the unverified state, and nftables's retry ran an empty transaction whose empty
// scope "verified". Both dataplanes over the repo's kernel fakes, which here lose part of one
// commit (a concurrent writer in the commit window, a kernel that normalised something).
import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { NOTHING_VERIFIED } from '../../../libs/dataplane/index.ts';
import { IpvsDataplane } from '../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import { MemoryOwnershipStore } from '../../../libs/dataplane/ipvs/ownership-record.ts';
import { NftablesDataplane } from '../../../libs/dataplane/nftables/index.ts';
import { formatIpvsadm } from '../../../libs/planner/index.ts';
import { FakeNftRunner } from '../../support/fake-nft-runner.ts';
import { LossyIpvsKernel, LossyNftRunner } from '../../support/lossy-kernels.ts';
import { nodeState as nftState, type VsSpec } from '../../netns/support/node-state-builder.ts';
import { nodeState, vs } from './ipvs/node-state-fixture.ts';

const ipvsV1 = () => nodeState([vs('10.96.0.10', 80, [['10.244.1.2', 8080]])]);
const ipvsV2 = () =>
  nodeState([
    vs('10.96.0.10', 80, [['10.244.1.2', 8080]]),
    vs('10.96.0.11', 80, [
      ['10.244.1.3', 8080],
      ['10.244.1.4', 8080],
    ]),
  ]);

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const d of open.splice(0)) await d.close();
});

function ipvs() {
  const kernel = new LossyIpvsKernel();
  const dp = new IpvsDataplane({
    kernel,
    store: new MemoryOwnershipStore(),
    kernelRelease: '6.1.0',
    registry: new Registry(),
    clock: () => 1_000_000,
  });
  open.push(dp);
  return { kernel, dp };
}

describe('IpvsDataplane after an unverified apply', () => {
  it('resync repairs towards the last VERIFIED state, never the doubtful attempt', async () => {
    const { kernel, dp } = ipvs();
    expect((await dp.apply(ipvsV1())).verified).toBe(true);
    kernel.loseRealServersOf = '10.96.0.11';
    const r = await dp.apply(ipvsV2());
    expect(r.verified).toBe(false);
    // the kernel now holds v2's service without its real servers; a resync puts back v1
    const fix = await dp.resync();
    expect(fix.verified).toBe(true);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(ipvsV1()));
    // and the attempted state applies in full afterwards
    expect((await dp.apply(ipvsV2())).verified).toBe(true);
    expect(kernel.ipvsadmSave()).toBe(formatIpvsadm(ipvsV2()));
  });

  it('resync before any verified apply says it checked nothing (verified: false)', async () => {
    const { dp } = ipvs();
    expect(await dp.resync()).toMatchObject({ kernelWrites: 0, verified: false, notes: [NOTHING_VERIFIED] });
  });
});

const web = (address: string, endpoints: string[]): VsSpec => ({
  servicePort: `default/web-${address}:http`,
  address,
  port: 80,
  endpoints,
});
const nftV1 = () => nftState([web('10.96.0.2', ['10.1.0.1:80'])]);
const nftV2 = () => nftState([web('10.96.0.2', ['10.1.0.1:80']), web('10.96.0.3', ['10.1.0.2:80'])]);

describe('NftablesDataplane after an unverified apply', () => {
  it('the retry plans against a fresh read-back and writes what is missing (not an empty, "verified" transaction)', async () => {
    const runner = new LossyNftRunner();
    const dp = new NftablesDataplane({ runner, table: 'sb', changeNotifications: false });
    open.push(dp);
    expect((await dp.apply(nftV1())).verified).toBe(true);
    runner.loseElementsOf = '10.96.0.3';
    const r = await dp.apply(nftV2());
    expect(r.verified).toBe(false);
    expect(runner.dump('inet', 'sb')).not.toContain('10.96.0.3 . tcp . 80');
    const retry = await dp.apply(nftV2());
    expect(retry).toMatchObject({ verified: true });
    expect(retry.notes).toContain('read back the whole table: the last apply did not verify');
    expect(retry.kernelWrites).toBeGreaterThan(0);
    expect(runner.dump('inet', 'sb')).toContain('10.96.0.3 . tcp . 80');
    expect(await dp.resync()).toMatchObject({ kernelWrites: 0, verified: true });
    // verified again: the next change is planned against what was applied, not a read-back
    const next = await dp.apply(nftV1());
    expect(next).toMatchObject({ verified: true });
    expect(next.notes).not.toContain('read back the whole table: the last apply did not verify');
  });

  it('a resync after an unverified apply reads the whole table and repairs it; a failed run also leaves the next apply reading back', async () => {
    const runner = new LossyNftRunner();
    const dp = new NftablesDataplane({ runner, table: 'sb', changeNotifications: false });
    open.push(dp);
    await dp.apply(nftV1());
    runner.loseElementsOf = '10.96.0.3';
    expect((await dp.apply(nftV2())).verified).toBe(false);
    const fix = await dp.resync();
    expect(fix).toMatchObject({ verified: true });
    expect(fix.kernelWrites).toBeGreaterThan(0);
    expect(runner.dump('inet', 'sb')).toContain('10.96.0.3 . tcp . 80');
    // a run the kernel refuses: the next apply does not trust what it believed before
    const failing = Object.assign(runner, { refuseNext: true });
    const run = failing.run.bind(failing);
    failing.run = async (tx) => {
      if (failing.refuseNext) {
        failing.refuseNext = false;
        throw new Error('nft: EPERM');
      }
      return run(tx);
    };
    await expect(dp.apply(nftV1())).rejects.toThrow('EPERM');
    const after = await dp.apply(nftV1());
    expect(after).toMatchObject({ verified: true });
    expect(after.notes).toContain('read back the whole table: the last apply did not verify');
  });

  it('resync before any apply says it checked nothing (verified: false)', async () => {
    const dp = new NftablesDataplane({ runner: new FakeNftRunner(), table: 'sb' });
    open.push(dp);
    expect(await dp.resync()).toMatchObject({ kernelWrites: 0, verified: false, notes: [NOTHING_VERIFIED] });
  });
});
