import { describe, expect, it } from 'vitest';
import {
  NOTHING_VERIFIED,
  type ApplyResult,
  type Dataplane,
  type NodeStateChange,
  type ResyncOptions,
  type RetireResult,
} from '../../../libs/dataplane/dataplane.ts';
import { ModeFollowingDataplane } from '../../../libs/dataplane/mode-following-dataplane.ts';
import { readProxyConfig, type NodeState, type ProxyMode } from '../../../libs/model/index.ts';
import { ClusterDataIndex, renderNodeState } from '../../../libs/planner/index.ts';

/** One fake kernel shared by the fake dataplanes: which modes currently hold programmed state. */
class FakeKernel {
  programmed = new Map<ProxyMode, NodeState>();
  log: string[] = [];
  failApply = new Set<ProxyMode>();
  /** Modes whose resync reports drift it cannot repair (once per entry). */
  failResync = new Set<ProxyMode>();
  /** Modes whose cleanup removes only part of what they own and says so (once per entry). */
  failCleanup = new Set<ProxyMode>();
  changes: (NodeStateChange | undefined)[] = [];
  /** Established connections each mode's state holds (only a mode with retire() keeps them). */
  connections = new Map<ProxyMode, number>();
  /** Modes whose next retire throws (once per entry). */
  failRetire = new Set<ProxyMode>();
  opened: FakeModeDataplane[] = [];
  /** Per resync, whether it was allowed to give way (ResyncOptions.yieldTo passed down). */
  mayGiveWay: boolean[] = [];
}

class FakeModeDataplane implements Dataplane {
  constructor(
    readonly mode: ProxyMode,
    protected readonly k: FakeKernel,
  ) {}
  private result(writes: number): ApplyResult {
    return { kernelWrites: writes, verified: true, durationMs: 0, notes: [] };
  }
  async apply(state: NodeState, change?: NodeStateChange): Promise<ApplyResult> {
    this.k.log.push(`apply ${this.mode}`);
    this.k.changes.push(change);
    if (this.k.failApply.has(this.mode)) throw new Error(`${this.mode} refused the state`);
    const same = this.k.programmed.get(this.mode) === state;
    this.k.programmed.set(this.mode, state);
    return this.result(same ? 0 : 1);
  }
  async resync(options?: ResyncOptions): Promise<ApplyResult> {
    this.k.log.push(`resync ${this.mode}`);
    this.k.mayGiveWay.push(options?.yieldTo !== undefined);
    if (this.k.failResync.delete(this.mode)) return { ...this.result(0), verified: false, notes: ['drift'] };
    return this.result(0);
  }
  async cleanup(): Promise<ApplyResult> {
    this.k.log.push(`cleanup ${this.mode}`);
    if (this.k.failCleanup.delete(this.mode)) return { ...this.result(1), verified: false, notes: ['EBUSY'] };
    return this.result(this.k.programmed.delete(this.mode) ? 1 : 0);
  }
  closed = false;
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** ipvs mode as it retires: kept while its connections last, removed (as a cleanup) once none is left. */
class FakeRetiringDataplane extends FakeModeDataplane {
  async retire(_state: NodeState): Promise<RetireResult> {
    this.k.log.push(`retire ${this.mode}`);
    if (this.k.failRetire.delete(this.mode)) throw new Error('netlink: EBUSY');
    const connections = this.k.connections.get(this.mode) ?? 0;
    if (connections > 0)
      return { kernelWrites: 1, verified: true, durationMs: 0, notes: [], removed: false, connections };
    const removed = this.k.programmed.delete(this.mode);
    return { kernelWrites: removed ? 1 : 0, verified: true, durationMs: 0, notes: [], removed: true, connections: 0 };
  }
}

const stateFor = (mode: ProxyMode) => renderNodeState(new ClusterDataIndex(), 'n1', readProxyConfig({ mode }));

describe('ModeFollowingDataplane (applier --mode auto)', () => {
  const make = (ipvsAvailable: boolean) => {
    const k = new FakeKernel();
    const dp = new ModeFollowingDataplane({
      ipvsAvailable,
      ipvsUnavailableReason: 'no IPVS in this kernel',
      open: async (m) => new FakeModeDataplane(m, k),
    });
    return { k, dp };
  };

  it('programs the mode the config asks for and removes the other mode’s leftovers on first apply', async () => {
    const { k, dp } = make(true);
    k.programmed.set('nftables', stateFor('nftables')); // left by an applier that died mid-switch
    const r = await dp.apply(stateFor('ipvs'));
    expect(dp.mode).toBe('ipvs');
    expect([...k.programmed.keys()]).toEqual(['ipvs']);
    expect(r.notes.join(' ')).toMatch(/removed 1 leftovers of nftables mode/);
  });

  it('switches make-before-break when the config mode changes, and back', async () => {
    const { k, dp } = make(true);
    await dp.apply(stateFor('ipvs'));
    k.log = [];
    const r = await dp.apply(stateFor('nftables'));
    expect(k.log).toEqual(['apply nftables', 'cleanup ipvs', 'resync nftables']);
    expect(dp.mode).toBe('nftables');
    expect([...k.programmed.keys()]).toEqual(['nftables']);
    expect(r.notes).toContain('switched ipvs → nftables');
    await dp.apply(stateFor('ipvs'));
    expect(dp.mode).toBe('ipvs');
    expect([...k.programmed.keys()]).toEqual(['ipvs']);
  });

  it("hands the caller's change to the mode that keeps serving", async () => {
    const { k, dp } = make(true);
    const s = stateFor('ipvs');
    await dp.apply(s);
    const next = { ...s };
    const change = { previous: s, virtualServers: [], removedVirtualServers: [] };
    await dp.apply(next, change);
    expect(k.changes).toEqual([undefined, change]);
    expect(k.changes[1]).toBe(change);
  });

  it('keeps the old mode serving when the new one fails, and reports the failure', async () => {
    const { k, dp } = make(true);
    const ipvsState = stateFor('ipvs');
    await dp.apply(ipvsState);
    k.failApply.add('nftables');
    await expect(dp.apply(stateFor('nftables'))).rejects.toThrow(/nftables mode failed to apply: nftables refused/);
    expect(dp.mode).toBe('ipvs');
    expect(k.programmed.get('ipvs')).toBe(ipvsState);
  });

  it('a switch that fails once the old mode is removed leaves the node in the new mode, which reports and repairs it (review F8)', async () => {
    const { k, dp } = make(true);
    await dp.apply(stateFor('ipvs'));
    k.failResync.add('nftables');
    await expect(dp.apply(stateFor('nftables'))).rejects.toThrow(/nftables mode drifted while ipvs was removed/);
    // not 'ipvs' with nothing programmed: the mode that serves is the one the node reports and resyncs
    expect(dp.mode).toBe('nftables');
    expect([...k.programmed.keys()]).toEqual(['nftables']);
    expect(await dp.resync()).toMatchObject({ verified: true });
    // the rollback switches back make-before-break and removes nftables
    k.log = [];
    await dp.apply(stateFor('ipvs'));
    expect(k.log).toEqual(['apply ipvs', 'cleanup nftables', 'resync ipvs']);
    expect(dp.mode).toBe('ipvs');
    expect([...k.programmed.keys()]).toEqual(['ipvs']);
  });

  it('a switch whose old-mode removal is incomplete: the retry in the new mode finishes the removal before it verifies', async () => {
    const { k, dp } = make(true);
    await dp.apply(stateFor('ipvs'));
    k.failCleanup.add('ipvs');
    await expect(dp.apply(stateFor('nftables'))).rejects.toThrow(/ipvs mode left state behind: EBUSY/);
    expect(dp.mode).toBe('nftables');
    expect([...k.programmed.keys()].sort()).toEqual(['ipvs', 'nftables']);
    k.log = [];
    const r = await dp.apply(stateFor('nftables'));
    expect(r.verified).toBe(true);
    expect(k.log).toEqual(['apply nftables', 'cleanup ipvs']);
    expect([...k.programmed.keys()]).toEqual(['nftables']);
    k.log = [];
    await dp.apply(stateFor('nftables'));
    expect(k.log).toEqual(['apply nftables']); // removed once: not again
  });

  it('resync before any apply checked nothing: verified false', async () => {
    const { dp } = make(true);
    expect(await dp.resync()).toMatchObject({ verified: false, notes: [NOTHING_VERIFIED] });
  });

  it('falls back to nftables where IPVS is missing, and says so', async () => {
    const { k, dp } = make(false);
    const r = await dp.apply(stateFor('ipvs'));
    expect(dp.mode).toBe('nftables');
    expect([...k.programmed.keys()]).toEqual(['nftables']);
    expect(k.log).not.toContain('cleanup ipvs');
    expect(r.notes[0]).toMatch(/config asks for ipvs but no IPVS in this kernel; running nftables/);
  });

  it('refuses a hashing scheduler it cannot keep when falling back, and leaves what runs alone', async () => {
    const { k, dp } = make(false);
    const base = stateFor('ipvs');
    await dp.apply(base);
    const vs = {
      protocol: 'TCP',
      address: '10.0.0.1',
      port: 80,
      schedulerFlags: [],
      persistenceTimeout: 0,
      role: 'cluster-ip',
      servicePort: 'default/web:http',
      localOnly: false,
      sourceRanges: [],
      realServers: [],
    } as const;
    const hashed: NodeState = { ...base, virtualServers: [{ ...vs, scheduler: 'sh' }] };
    await expect(dp.apply(hashed)).rejects.toThrow(
      /config asks for ipvs scheduler sh \(source hashing.*no IPVS in this kernel; nftables balances at random/,
    );
    expect(k.programmed.get('nftables')).toBe(base);
    // A non-hashing scheduler falls back as before.
    await dp.apply({ ...base, virtualServers: [{ ...vs, scheduler: 'rr' }] });
    expect(k.programmed.get('nftables')!.virtualServers[0]!.scheduler).toBe('rr');
  });

  describe('ipvs → nftables keeps the connections IPVS made (ipvs mode retires)', () => {
    const makeRetiring = () => {
      const k = new FakeKernel();
      const logged: string[] = [];
      const dp = new ModeFollowingDataplane({
        ipvsAvailable: true,
        open: async (m) => {
          const d = m === 'ipvs' ? new FakeRetiringDataplane(m, k) : new FakeModeDataplane(m, k);
          k.opened.push(d);
          return d;
        },
        log: (l) => logged.push(l),
        drainStepMs: 0, // steps at resyncs only: each test says when
      });
      return { k, dp, logged };
    };

    it('a resync may give way only when the drain step before it wrote nothing (what it wrote is reported with that resync)', async () => {
      const { k, dp } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 2);
      await dp.apply(stateFor('nftables'));
      expect(dp.draining).toBe('ipvs');
      k.mayGiveWay = [];
      const yieldTo = new AbortController().signal;
      expect(await dp.resync({ yieldTo })).toMatchObject({ kernelWrites: 1, scheduledWrites: 1 });
      k.connections.set('ipvs', 0);
      await dp.resync({ yieldTo }); // the drain ends: ipvs removed, a write
      expect(dp.draining).toBeUndefined();
      await dp.resync({ yieldTo }); // nothing retires
      expect(k.mayGiveWay).toEqual([false, false, true]);
    });

    it('keeps ipvs mode while its connections last, moves the drain on at each resync, and removes it once they are gone', async () => {
      const { k, dp, logged } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      const ipvs = k.opened[0]!;
      k.connections.set('ipvs', 3);
      k.log = [];
      const r = await dp.apply(stateFor('nftables'));
      expect(k.log).toEqual(['apply nftables', 'retire ipvs', 'resync nftables']);
      expect(r.verified).toBe(true);
      expect(r.notes).toContain('switched ipvs → nftables');
      expect(r.notes.join(' ')).toMatch(/ipvs mode kept for 3 established connection\(s\) until they close/);
      expect(dp.mode).toBe('nftables');
      expect(dp.draining).toBe('ipvs');
      expect([...k.programmed.keys()].sort()).toEqual(['ipvs', 'nftables']);
      expect(ipvs.closed).toBe(false);

      // an apply in the serving mode leaves the drain alone; a resync moves it on, before the resync
      k.log = [];
      await dp.apply(stateFor('nftables'));
      expect(k.log).toEqual(['apply nftables']);
      k.connections.set('ipvs', 1);
      const still = await dp.resync();
      expect(k.log).toEqual(['apply nftables', 'retire ipvs', 'resync nftables']);
      expect(still).toMatchObject({ verified: true, kernelWrites: 1, scheduledWrites: 1 });
      expect(still.notes.join(' ')).toMatch(/kept for 1 established/);
      expect(dp.draining).toBe('ipvs');
      const quiet = await dp.resync(); // the same count: not said again
      expect(quiet.notes).toEqual([]);

      k.connections.set('ipvs', 0);
      k.log = [];
      const gone = await dp.resync();
      expect(k.log).toEqual(['retire ipvs', 'resync nftables']);
      expect(gone.notes.join(' ')).toMatch(/ipvs mode removed/);
      expect(dp.draining).toBeUndefined();
      expect(ipvs.closed).toBe(true);
      expect([...k.programmed.keys()]).toEqual(['nftables']);
      expect(logged.filter((l) => /kept for|removed/.test(l))).toHaveLength(3);
      k.log = [];
      await dp.resync();
      expect(k.log).toEqual(['resync nftables']);
    });

    it('removes ipvs mode at once when no connection holds it', async () => {
      const { k, dp } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      await dp.apply(stateFor('nftables'));
      expect(dp.draining).toBeUndefined();
      expect(k.opened[0]!.closed).toBe(true);
      expect([...k.programmed.keys()]).toEqual(['nftables']);
    });

    it('a switch back while ipvs mode drains takes the draining dataplane up again', async () => {
      const { k, dp } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 2);
      await dp.apply(stateFor('nftables'));
      k.log = [];
      const back = await dp.apply(stateFor('ipvs'));
      expect(back.verified).toBe(true);
      expect(k.log).toEqual(['apply ipvs', 'cleanup nftables', 'resync ipvs']);
      expect(k.opened.filter((d) => d.mode === 'ipvs')).toHaveLength(1);
      expect(dp.mode).toBe('ipvs');
      expect(dp.draining).toBeUndefined();
      expect([...k.programmed.keys()]).toEqual(['ipvs']);
    });

    it('a switch back that fails leaves the retiring mode retiring (its connections still need it), nftables serving', async () => {
      const { k, dp } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 2);
      await dp.apply(stateFor('nftables'));
      k.failApply.add('ipvs');
      k.log = [];
      await expect(dp.apply(stateFor('ipvs'))).rejects.toThrow(/ipvs mode failed to apply: ipvs refused the state/);
      expect(k.log).toEqual(['apply ipvs', 'retire ipvs']); // not 'cleanup ipvs'
      expect(dp.mode).toBe('nftables');
      expect(dp.draining).toBe('ipvs');
      expect(k.opened[0]!.closed).toBe(false);
      k.connections.set('ipvs', 0);
      await dp.resync();
      expect(dp.draining).toBeUndefined();
      expect([...k.programmed.keys()]).toEqual(['nftables']);
    });

    it('an applier restarted in nftables mode finds ipvs mode still holding connections and drains it (no removal at once)', async () => {
      const { k, dp } = makeRetiring();
      k.programmed.set('ipvs', stateFor('ipvs')); // the previous applier switched, then died
      k.connections.set('ipvs', 4);
      const r = await dp.apply(stateFor('nftables'));
      expect(r.verified).toBe(true);
      expect(r.notes.join(' ')).toMatch(/retired 1 leftovers of ipvs mode.*kept for 4 established/);
      expect(dp.draining).toBe('ipvs');
      expect(k.log).not.toContain('cleanup ipvs');
      k.connections.set('ipvs', 0);
      await dp.resync();
      expect(dp.draining).toBeUndefined();
      expect([...k.programmed.keys()]).toEqual(['nftables']);
    });

    it('a retire that fails is a note, the serving mode still verifies, and the next resync tries again', async () => {
      const { k, dp, logged } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 1);
      await dp.apply(stateFor('nftables'));
      k.failRetire.add('ipvs');
      const r = await dp.resync();
      expect(r.verified).toBe(true);
      expect(r.notes.join(' ')).toMatch(/ipvs mode retiring failed \(tried again at its next step\): netlink: EBUSY/);
      expect(logged.join('\n')).toMatch(/retiring failed/);
      expect(dp.draining).toBe('ipvs');
      k.connections.set('ipvs', 0);
      await dp.resync();
      expect(dp.draining).toBeUndefined();
    });

    it('without drain (a one-shot apply: nothing would finish it) ipvs mode goes at once, connections or not', async () => {
      const k = new FakeKernel();
      const dp = new ModeFollowingDataplane({
        ipvsAvailable: true,
        drain: false,
        open: async (m) => (m === 'ipvs' ? new FakeRetiringDataplane(m, k) : new FakeModeDataplane(m, k)),
      });
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 2);
      k.log = [];
      await dp.apply(stateFor('nftables'));
      expect(k.log).toEqual(['apply nftables', 'cleanup ipvs', 'resync nftables']);
      expect(dp.draining).toBeUndefined();
      // and an applier started in nftables mode removes ipvs mode's leftovers as before
      k.programmed.set('ipvs', stateFor('ipvs'));
      const fresh = new ModeFollowingDataplane({
        ipvsAvailable: true,
        drain: false,
        open: async (m) => (m === 'ipvs' ? new FakeRetiringDataplane(m, k) : new FakeModeDataplane(m, k)),
      });
      k.log = [];
      await fresh.apply(stateFor('nftables'));
      expect(k.log).toEqual(['apply nftables', 'cleanup ipvs']);
      expect([...k.programmed.keys()]).toEqual(['nftables']);
    });

    it('the drain moves on by itself between resyncs (resync off or rare), and stops when the dataplane closes', async () => {
      const k = new FakeKernel();
      const logged: string[] = [];
      const open = async (m: ProxyMode) =>
        m === 'ipvs' ? new FakeRetiringDataplane(m, k) : new FakeModeDataplane(m, k);
      const dp = new ModeFollowingDataplane({ ipvsAvailable: true, drainStepMs: 20, open, log: (l) => logged.push(l) });
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 1);
      await dp.apply(stateFor('nftables'));
      expect(dp.draining).toBe('ipvs');
      k.connections.set('ipvs', 0);
      const until = Date.now() + 5000;
      while (dp.draining && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(dp.draining).toBeUndefined(); // no resync ran: the drain's own step removed it
      expect(k.log.filter((l) => l === 'resync nftables')).toHaveLength(1); // the switch's recheck only
      expect([...k.programmed.keys()]).toEqual(['nftables']);
      expect(logged.join('\n')).toMatch(/ipvs mode removed/);

      // closed mid-drain: no step after it (the next applier drains on from the kernel)
      const again = new ModeFollowingDataplane({ ipvsAvailable: true, drainStepMs: 20, open });
      await again.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 1);
      await again.apply(stateFor('nftables'));
      await again.close();
      const retires = k.log.filter((l) => l === 'retire ipvs').length;
      await new Promise((r) => setTimeout(r, 100));
      expect(k.log.filter((l) => l === 'retire ipvs')).toHaveLength(retires);
      expect(k.programmed.has('ipvs')).toBe(true);
    });

    it('cleanup removes the retiring mode as well as the serving one', async () => {
      const { k, dp } = makeRetiring();
      await dp.apply(stateFor('ipvs'));
      k.connections.set('ipvs', 1);
      await dp.apply(stateFor('nftables'));
      k.log = [];
      const c = await dp.cleanup();
      expect(c.verified).toBe(true);
      expect(k.log).toEqual(['cleanup ipvs', 'cleanup nftables']);
      expect([...k.programmed.keys()]).toEqual([]);
      expect(dp.draining).toBeUndefined();
    });
  });
});
