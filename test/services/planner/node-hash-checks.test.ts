import { describe, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG, readProxyConfig, type ServiceEntry } from '../../../libs/model/index.ts';
import { ClusterDataIndex, nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { ExpectedHashCache, NodeHashChecks } from '../../../services/planner/node-hash-checks.ts';
import { serviceEntry } from '../../libs/bus/fixtures.ts';

// The planner's node-state hashes are rendered off its read paths (review4 G7): asked for, then
// computed in slices that yield, kept for the newest version only. A hand-driven scheduler and
// clock make every slice visible.
function harness(o: { sliceMs?: number; costMs?: number; latest?: () => number } = {}) {
  let clock = 0;
  const slices: (() => void)[] = [];
  const rests: number[] = [];
  const computed: string[] = [];
  const checked: string[][] = [];
  const checks = new NodeHashChecks({
    compute: (node, version, revision) => {
      if (o.latest && o.latest() !== version) return undefined;
      clock += o.costMs ?? 4;
      computed.push(`${node}@${version}/${revision}`);
      return `h(${node},${version},${revision})`;
    },
    onChecked: (nodes) => checked.push([...nodes]),
    sliceMs: o.sliceMs ?? 10,
    schedule: (fn, restMs) => {
      slices.push(fn);
      rests.push(restMs);
      return { cancel: () => slices.splice(slices.indexOf(fn), 1) };
    },
    nowMs: () => clock,
  });
  const runSlice = () => slices.shift()!();
  return { checks, slices, rests, computed, checked, runSlice };
}

describe('NodeHashChecks: node-state hashes computed off the read path', () => {
  it('computes nothing when asked for a hash; wanted ones go in slices bounded by time, one node at least', () => {
    const h = harness({ sliceMs: 10, costMs: 4 });
    expect(h.checks.get('n1', 3, 1)).toBeUndefined();
    for (const n of ['n1', 'n2', 'n3', 'n4', 'n1']) h.checks.want(n, 3, 1); // n1 twice: queued once
    expect(h.computed).toEqual([]);
    expect(h.checks.pending).toBe(4);
    expect(h.slices).toHaveLength(1); // one slice scheduled, not one per want
    h.runSlice(); // 4 + 4 + 4 ms: the third crosses 10 ms, then it yields
    expect(h.computed).toEqual(['n1@3/1', 'n2@3/1', 'n3@3/1']);
    expect(h.checked).toEqual([['n1', 'n2', 'n3']]);
    expect(h.slices).toHaveLength(1);
    h.runSlice();
    expect(h.computed).toHaveLength(4);
    expect(h.slices).toHaveLength(0);
    expect(h.rests).toEqual([0, 2]); // the first slice overran its 10 ms by 2: the next rested as long
    expect(h.checks.get('n4', 3, 1)).toBe('h(n4,3,1)');
    expect(h.checks.get('n4', 3, 2)).toBeUndefined(); // another revision is another hash
    h.checks.want('n4', 3, 1); // known: nothing to do
    expect(h.slices).toHaveLength(0);
    expect(h.checks.rendered).toBe(4);
  });

  it('keeps the newest version only: older entries and queued checks go, older asks are ignored', () => {
    let latest = 3;
    const h = harness({ sliceMs: 0, latest: () => latest });
    h.checks.want('n1', 3, 1);
    h.runSlice();
    h.checks.want('n2', 3, 1);
    latest = 4;
    h.checks.want('n1', 4, 1); // version 4: n1@3 forgotten, n2@3 never computed
    expect(h.checks.get('n1', 3, 1)).toBeUndefined();
    h.checks.want('n3', 3, 1); // an ACK of an older version: not checked
    while (h.slices.length) h.runSlice();
    expect(h.computed).toEqual(['n1@3/1', 'n1@4/1']);
    // a check whose version moved on before its slice ran renders nothing
    h.checks.want('n5', 4, 1);
    latest = 5;
    h.runSlice();
    expect(h.computed).toHaveLength(2);
    expect(h.checks.get('n5', 4, 1)).toBeUndefined();
  });

  it('holds one entry per node and revision of the latest version, past 10k nodes (no clear-all past a size)', () => {
    const h = harness({ sliceMs: 1e9, costMs: 0 });
    const N = 10_200; // past the 10,000 keys at which the old cache was cleared whole
    for (let i = 0; i < N; i++) h.checks.want(`n${i}`, 3, 1);
    h.runSlice();
    // all of them still known (a cache cleared past 10k would recompute them on every read)
    expect(h.checks.get('n0', 3, 1)).toBe('h(n0,3,1)');
    expect(h.checks.get(`n${N - 1}`, 3, 1)).toBe(`h(n${N - 1},3,1)`);
    for (let i = 0; i < N; i++) h.checks.want(`n${i}`, 3, 1);
    expect(h.slices).toHaveLength(0);
    expect(h.checks.rendered).toBe(N);
    // the next version's first check drops the whole previous version
    h.checks.want('n0', 4, 1);
    h.runSlice();
    expect(h.checks.get('n1', 3, 1)).toBeUndefined();
    expect(h.checks.rendered).toBe(N + 1);
  });

  it('a render that throws is reported once and not retried for that version; stop() cancels what is queued', () => {
    const errors: string[] = [];
    const checks = new NodeHashChecks({
      compute: () => {
        throw new Error('render failed');
      },
      onError: (node, e) => errors.push(`${node}: ${(e as Error).message}`),
      schedule: (fn) => (fn(), { cancel: () => {} }),
    });
    checks.want('bad', 1, 1);
    checks.want('bad', 1, 1);
    expect(errors).toEqual(['bad: render failed']);
    expect(checks.get('bad', 1, 1)).toBeUndefined();
    const h = harness();
    h.checks.want('n1', 1, 1);
    h.checks.stop();
    expect(h.slices).toHaveLength(0);
    h.checks.want('n2', 1, 1);
    expect(h.checks.pending).toBe(0);
  });
});

describe('NodeHashChecks: the shared rendering is built in steps, never in one block', () => {
  // A cluster whose first build takes many steps (each about 16 services rendered): the checks
  // must let the event loop run between them, and a newer version must drop an unfinished one.
  const cluster = (services: number, gen = 0) =>
    Array.from({ length: services }, (_, i) =>
      serviceEntry(
        `ns/s${i}`,
        [`10.96.${i >> 8}.${i & 255}`],
        [
          {
            name: 'http',
            protocol: 'TCP',
            port: 80,
            nodePort: i % 5 === 0 ? 30000 + i : 0,
            endpoints: [0, 1, 2].map((e) => ({
              ip: `10.244.${(i + gen) & 255}.${e + 1}`,
              port: 8080,
              nodeName: `n${(i + e) % 3}`,
              zone: '',
              ready: true,
              serving: true,
              terminating: false,
              hintZones: [],
            })),
          },
        ],
        i % 5 === 0,
      ),
    );
  const nodes = ['n0', 'n1', 'n2'].map((name, i) => ({ name, addresses: [`192.0.2.${i + 1}`], zone: '' }));

  it("a timer set while a large first check runs fires before it ends; the hash is the full render's", async () => {
    const data = ClusterDataIndex.from({ services: cluster(800), nodes });
    const config = DEFAULT_PROXY_CONFIG;
    const cache = new ExpectedHashCache();
    let clock = 0;
    const at = (version: number) => ({ version, revision: 1, config, data });
    const checks = new NodeHashChecks({
      compute: (node, version) => cache.hash(node, at(version)),
      prepare: (version) => cache.prepare(at(version)),
      nowMs: () => (clock += 1), // each read 1 ms: a 10 ms slice is about ten steps, whatever the host's speed
    });
    try {
      checks.want('n1', 1, 1);
      let turns = 0;
      let knownAtFirstTurnInside: boolean | undefined;
      while (checks.get('n1', 1, 1) === undefined) {
        await new Promise((r) => setTimeout(r, 0));
        turns += 1;
        expect(turns).toBeLessThan(10_000);
        if (knownAtFirstTurnInside === undefined && (checks.prepareSteps > 0 || checks.get('n1', 1, 1)))
          knownAtFirstTurnInside = checks.get('n1', 1, 1) !== undefined;
      }
      // once the check had started, a timer ran while it was still running (before: one block)
      expect(knownAtFirstTurnInside).toBe(false);
      expect(checks.prepareSteps).toBeGreaterThan(30); // ~800 renders and ~960 VIP:ports, 16 a step
      expect(checks.get('n1', 1, 1)).toBe(nodeStateHash(renderNodeState(data, 'n1', config)));
    } finally {
      checks.stop();
    }
  });

  it('a newer version supersedes a check in flight: the older build is dropped, not finished, and its node never computed', async () => {
    const data = ClusterDataIndex.from({ services: cluster(800), nodes });
    const config = DEFAULT_PROXY_CONFIG;
    const cache = new ExpectedHashCache();
    let latest = 1;
    let clock = 0;
    const computed: string[] = [];
    const prepared: number[] = [];
    const at = (version: number) => ({ version, revision: 1, config, data });
    const slices: (() => void)[] = [];
    const checks = new NodeHashChecks({
      compute: (node, version) => {
        if (version !== latest) return undefined;
        computed.push(`${node}@${version}`);
        return cache.hash(node, at(version));
      },
      prepare: (version) => {
        prepared.push(version);
        return cache.prepare(at(version));
      },
      schedule: (fn) => {
        slices.push(fn);
        return { cancel: () => slices.splice(slices.indexOf(fn), 1) };
      },
      nowMs: () => (clock += 1),
    });
    checks.want('n1', 1, 1);
    slices.shift()!(); // version 1's build has started, and is far from done
    expect(checks.prepareSteps).toBeGreaterThan(0);
    expect(checks.get('n1', 1, 1)).toBeUndefined();
    // version 2 is published (the planner's data moves in place) and a node ACKs it
    const moved = cluster(800, 1).filter((_, i) => i % 10 === 0);
    data.apply({ upsertServices: moved, removeServices: ['ns/s7'], upsertNodes: [], removeNodes: [] });
    latest = 2;
    checks.want('n2', 2, 1);
    expect(checks.pending).toBe(1); // n1@1 left the queue with its version
    while (slices.length > 0) slices.shift()!();
    expect(prepared).toEqual([1, 2]);
    expect(computed).toEqual(['n2@2']); // nothing of version 1 was computed
    // the half-moved build, completed to version 2, gives the full render's hash
    expect(checks.get('n2', 2, 1)).toBe(nodeStateHash(renderNodeState(data, 'n2', config)));
    expect(cache.hash('n0', at(2))).toBe(nodeStateHash(renderNodeState(data, 'n0', config)));
  });
});

describe('NodeHashChecks: a node computed in steps', () => {
  it("one node's steps span slices; a newer version drops the node in flight", () => {
    let clock = 0;
    const slices: (() => void)[] = [];
    const closed: string[] = [];
    const checks = new NodeHashChecks({
      compute: (node, version) =>
        (function* () {
          try {
            for (let i = 0; i < 5; i++) {
              clock += 4;
              yield;
            }
            return `h(${node},${version})`;
          } finally {
            closed.push(`${node}@${version}`);
          }
        })(),
      sliceMs: 10,
      schedule: (fn) => {
        slices.push(fn);
        return { cancel: () => slices.splice(slices.indexOf(fn), 1) };
      },
      nowMs: () => clock,
    });
    checks.want('n1', 1, 1);
    slices.shift()!(); // three steps (12 ms), then it yields: the node is not done
    expect(checks.get('n1', 1, 1)).toBeUndefined();
    expect(slices).toHaveLength(1);
    slices.shift()!();
    expect(checks.get('n1', 1, 1)).toBe('h(n1,1)');
    checks.want('n2', 1, 1);
    slices.shift()!(); // n2 half done
    checks.want('n3', 2, 1); // version 2: n2's steps are dropped
    expect(closed).toEqual(['n1@1', 'n2@1']);
    while (slices.length > 0) slices.shift()!();
    expect(checks.get('n3', 2, 1)).toBe('h(n3,2)');
    expect(checks.rendered).toBe(2);
  });
});

describe('ExpectedHashCache: what NodeHashChecks computes', () => {
  it("gives each node the full render's hash, each revision's shared part moved to the version asked about", () => {
    const service = (name: string, ip: string, nodePort: number): ServiceEntry =>
      serviceEntry(
        `ns/${name}`,
        [ip],
        [{ name: 'http', protocol: 'TCP', port: 80, nodePort, endpoints: [] }],
        nodePort !== 0,
      );
    const nodes = ['n1', 'n2'].map((name, i) => ({ name, addresses: [`192.0.2.${i + 1}`], zone: '' }));
    const data = ClusterDataIndex.from({ services: [service('a', '10.96.0.1', 30001)], nodes });
    const configs = [DEFAULT_PROXY_CONFIG, readProxyConfig({ scheduler: 'lc' }), readProxyConfig({ mode: 'nftables' })];
    const cache = new ExpectedHashCache();
    const check = (version: number) => {
      for (const [revision, config] of configs.entries())
        for (const n of nodes)
          expect(cache.hash(n.name, { version, revision, config, data })).toBe(
            nodeStateHash(renderNodeState(data, n.name, config)),
          );
    };
    check(1);
    check(1); // three revisions in turn, two kept: one is built again from scratch
    data.apply({
      upsertServices: [service('b', '10.96.0.2', 0)],
      removeServices: [],
      upsertNodes: [],
      removeNodes: [],
    });
    check(2);
    data.apply({
      upsertServices: [service('a', '10.96.0.1', 0)],
      removeServices: ['ns/b'],
      upsertNodes: [],
      removeNodes: [],
    });
    check(3);
  });
});
