// A drain that starts or ends changes only the ownership record's draining map; the record's
// bookkeeping for it is O(change): the superset saved before the run is the record plus the slice
// (recordWith, the same union as mergeRecords), it is saved once, its lists are the record's own
// arrays (ownedIndex keeps their sets), and the file store writes them from their cached bytes
// (recordBytes, the same text as JSON.stringify(record, null, 1)).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { edited, ownedIndex, recordWith, sameRecord } from '../../../../libs/dataplane/ipvs/change-slice.ts';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import {
  EMPTY_RECORD,
  FileOwnershipStore,
  MemoryOwnershipStore,
  mergeRecords,
  recordBytes,
  type OwnershipRecord,
} from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import type { NodeState } from '../../../../libs/model/index.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';
import { nodeState, vs } from './node-state-fixture.ts';

const names = (prefix: string) =>
  fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 12 }).map((ns) => ns.map((n) => `${prefix}${n}`).sort());
const record: fc.Arbitrary<OwnershipRecord> = fc.record({
  version: fc.constant(1 as const),
  virtualServers: names('TCP/10.96.0.'),
  addresses: names('10.96.0.'),
  ipsets: names('KUBE-'),
  dummyDevice: fc.boolean(),
  netfilterChains: fc.dictionary(fc.constantFrom('nat', 'filter'), names('KUBE-')),
  draining: fc.dictionary(
    names('TCP/10.96.0.').map((k) => `${k[0] ?? 'TCP/10.96.0.1'}>10.1.0.1:80`),
    fc.integer({ min: 0, max: 5 }),
  ),
});
// (a table with no chains is none: recordWith does not add one)
const asSets = (r: OwnershipRecord) => ({
  ...r,
  netfilterChains: Object.fromEntries(Object.entries(r.netfilterChains).filter(([, cs]) => cs.length > 0)),
  virtualServers: [...r.virtualServers].sort(),
  addresses: [...r.addresses].sort(),
  ipsets: [...r.ipsets].sort(),
});

describe('ownership record bookkeeping', () => {
  it('recordWith is mergeRecords, keeping each list nothing was added to as the same array', () => {
    fc.assert(
      fc.property(record, record, (a, b) => {
        const owned = ownedIndex(a);
        const got = recordWith(owned, b);
        expect(asSets(got)).toEqual(asSets(mergeRecords(a, b)));
        for (const k of ['virtualServers', 'addresses', 'ipsets'] as const) {
          if (b[k].every((x) => a[k].includes(x))) expect(got[k]).toBe(a[k]);
          else expect(got[k]).not.toBe(a[k]);
        }
        // the index of the result answers for its lists, and shares the index of the lists it shares
        const next = ownedIndex(got, owned);
        const probe = [
          ...a.virtualServers,
          ...b.virtualServers,
          ...a.addresses,
          ...b.addresses,
          ...a.ipsets,
          ...b.ipsets,
          'x',
        ];
        for (const k of ['virtualServers', 'addresses', 'ipsets'] as const) {
          expect(probe.filter((x) => next[k].has(x)).sort()).toEqual(probe.filter((x) => got[k].includes(x)).sort());
          if (got[k] === a[k]) expect(next[k]).toBe(owned[k]);
        }
        // nothing new: the record itself, as sameRecord sees it
        expect(sameRecord(recordWith(owned, a), a)).toBe(true);
        expect(sameRecord(got, a)).toBe(
          b.virtualServers.every((x) => a.virtualServers.includes(x)) &&
            b.addresses.every((x) => a.addresses.includes(x)) &&
            b.ipsets.every((x) => a.ipsets.includes(x)) &&
            Object.entries(b.netfilterChains).every(([t, cs]) => cs.every((c) => a.netfilterChains[t]?.includes(c))) &&
            (a.dummyDevice || !b.dummyDevice) &&
            Object.entries(b.draining).every(([k, v]) => a.draining[k] === v),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('edited puts keys in and takes keys out of a list in code-unit order, in order or not', () => {
    const key = fc.integer({ min: 0, max: 30 }).map((n) => `k${n}`);
    fc.assert(
      fc.property(fc.array(key), fc.boolean(), fc.array(key), fc.array(key), (raw, inOrder, add, remove) => {
        const list = inOrder ? [...new Set(raw)].sort() : raw;
        const got = edited(list, add, remove);
        const want = [...new Set([...list.filter((k) => !remove.includes(k)), ...add])].sort();
        expect(got).toEqual(add.length + remove.length === 0 ? list : want);
        if (add.length + remove.length === 0) expect(got).toBe(list);
        // and the index of the result answers as the list does
        const owned = ownedIndex({ ...EMPTY_RECORD, virtualServers: got });
        for (const k of [...raw, ...add, ...remove, 'k99']) expect(owned.virtualServers.has(k)).toBe(got.includes(k));
      }),
      { numRuns: 300 },
    );
  });

  it("recordBytes writes JSON.stringify(record, null, 1)'s text, whatever its lists' cached bytes", () => {
    fc.assert(
      fc.property(record, fc.array(fc.tuple(fc.string(), fc.integer())), (r, drains) => {
        expect(recordBytes(r).toString('utf8')).toBe(`${JSON.stringify(r, null, 1)}\n`);
        // the same lists again (their bytes cached), another draining map
        const again = { ...r, draining: Object.fromEntries(drains) };
        expect(recordBytes(again).toString('utf8')).toBe(`${JSON.stringify(again, null, 1)}\n`);
      }),
      { numRuns: 200 },
    );
  });

  // A list `edited` from another gets its bytes spliced from that list's (record-list-bytes.ts):
  // any chain of edits, saved or not between them, from a list whose bytes were made or not, with
  // strings JSON escapes (quotes, backslashes, control characters, non-ASCII), must give
  // JSON.stringify's text.
  it('recordBytes of lists edited from others (bytes spliced) writes JSON.stringify(record, null, 1)', () => {
    const key = fc.oneof(
      fc.integer({ min: 0, max: 30 }).map((n) => `TCP/10.96.0.${n}:80`),
      fc.constantFrom('a"quote', 'back\\slash', 'new\nline', 'tab\t', 'ünï', '日本', '\u2028', ''),
    );
    const base = fc.uniqueArray(key, { maxLength: 12 }).map((ks) => ks.sort());
    const edit = fc.record({
      add: fc.array(key, { maxLength: 4 }),
      remove: fc.array(key, { maxLength: 4 }),
      save: fc.boolean(),
    });
    fc.assert(
      fc.property(base, fc.boolean(), fc.array(edit, { minLength: 1, maxLength: 8 }), (start, savedFirst, edits) => {
        let list: readonly string[] = start;
        if (savedFirst) recordBytes({ ...EMPTY_RECORD, virtualServers: list });
        for (const e of edits) {
          list = edited(list, e.add, e.remove);
          if (!e.save) continue;
          const r = { ...EMPTY_RECORD, virtualServers: list, addresses: list };
          expect(recordBytes(r).toString('utf8')).toBe(`${JSON.stringify(r, null, 1)}\n`);
        }
        const r = { ...EMPTY_RECORD, virtualServers: list };
        expect(recordBytes(r).toString('utf8')).toBe(`${JSON.stringify(r, null, 1)}\n`);
      }),
      { numRuns: 500 },
    );
  });

  it('recordBytes of a list edited by many steps at once (serialised, not spliced) is JSON.stringify too', () => {
    const base = Array.from({ length: 500 }, (_, i) => `TCP/10.96.${Math.floor(i / 250)}.${i % 250}:80`).sort();
    recordBytes({ ...EMPTY_RECORD, virtualServers: base });
    const many = edited(
      base,
      Array.from({ length: 300 }, (_, i) => `UDP/10.97.0.${i}:53`),
      base.filter((_, i) => i % 3 === 0),
    );
    const r = { ...EMPTY_RECORD, virtualServers: many };
    expect(recordBytes(r).toString('utf8')).toBe(`${JSON.stringify(r, null, 1)}\n`);
  });

  describe('IpvsDataplane', () => {
    const dirs: string[] = [];
    afterEach(() => {
      vi.restoreAllMocks();
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    });

    it('a drain that starts saves the record once, before the kernel write, with the same lists and the drain added; the file says so', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sb-own-saves-'));
      dirs.push(dir);
      const store = new FileOwnershipStore(join(dir, 'ipvs.json'));
      const kernel = new FakeIpvsKernel();
      const dp = new IpvsDataplane({ kernel, store, clock: () => 1000, kernelRelease: '6.1.0' });
      const services = Array.from({ length: 20 }, (_, i) =>
        vs(`10.96.0.${i + 1}`, 80, [
          [`10.1.${i}.1`, 8080],
          [`10.1.${i}.2`, 8080],
        ]),
      );
      const s: NodeState = nodeState(services);
      expect((await dp.apply(s)).verified).toBe(true);
      const loaded = await store.load();
      const saves = vi.spyOn(store, 'save');
      const writes = vi.spyOn(kernel, 'run');
      // 10.1.3.2 leaves its service while it holds a connection: it drains
      kernel.setConnections('TCP/10.96.0.4:80', '10.1.3.2:8080', 1, 0);
      const changed = { ...services[3]!, realServers: services[3]!.realServers.slice(0, 1) };
      const next: NodeState = { ...s, virtualServers: s.virtualServers.map((v, i) => (i === 3 ? changed : v)) };
      const r = await dp.apply(next, { previous: s, virtualServers: [changed], removedVirtualServers: [] });
      expect(r).toMatchObject({ verified: true, kernelWrites: 1 });
      expect(saves).toHaveBeenCalledTimes(1);
      expect(saves.mock.invocationCallOrder[0]!).toBeLessThan(writes.mock.invocationCallOrder[0]!);
      const saved = saves.mock.calls[0]![0];
      expect(saved.draining).toEqual({ 'TCP/10.96.0.4:80>10.1.3.2:8080': 1000 });
      const before = dp as unknown as { owned: { record: OwnershipRecord } };
      expect(before.owned.record).toBe(saved);
      expect(JSON.parse(readFileSync(store.path, 'utf8'))).toEqual({ ...loaded, draining: saved.draining });
      // the lists are the ones the record held (ownedIndex kept their sets: nothing rebuilt)
      const firstLists = saved.virtualServers;
      // its connection closes and the resync ends the drain; then another drain starts: the lists
      // are still the same arrays
      kernel.setConnections('TCP/10.96.0.4:80', '10.1.3.2:8080', 0, 0);
      expect(await dp.resync()).toMatchObject({ verified: true, kernelWrites: 1 });
      kernel.setConnections('TCP/10.96.0.5:80', '10.1.4.2:8080', 2, 0);
      const changed5 = { ...services[4]!, realServers: services[4]!.realServers.slice(0, 1) };
      const next5: NodeState = { ...next, virtualServers: next.virtualServers.map((v, i) => (i === 4 ? changed5 : v)) };
      saves.mockClear();
      expect(
        await dp.apply(next5, { previous: next, virtualServers: [changed5], removedVirtualServers: [] }),
      ).toMatchObject({ verified: true, kernelWrites: 1 });
      expect(saves).toHaveBeenCalledTimes(1);
      expect(saves.mock.calls[0]![0].draining).toEqual({ 'TCP/10.96.0.5:80>10.1.4.2:8080': 1000 });
      expect(JSON.parse(readFileSync(store.path, 'utf8')).virtualServers).toEqual(firstLists);
    });

    it('the state file holds exactly the record, as JSON.stringify writes it, while services come and go (lists spliced)', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'sb-own-splice-'));
      dirs.push(dir);
      const store = new FileOwnershipStore(join(dir, 'ipvs.json'));
      const dp = new IpvsDataplane({ kernel: new FakeIpvsKernel(), store, kernelRelease: '6.1.0' });
      const svc = (i: number) => vs(`10.96.${i % 3}.${i}`, 80 + (i % 2), [[`10.1.0.${i}`, 8080]]);
      let live = [1, 2, 3, 4, 5].map(svc);
      let s = nodeState(live);
      expect((await dp.apply(s)).verified).toBe(true);
      const fileIsRecord = () => {
        const text = readFileSync(store.path, 'utf8');
        expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 1)}\n`);
        const r = JSON.parse(text) as OwnershipRecord;
        expect(r.virtualServers).toEqual(live.map((v) => `TCP/${v.address}:${v.port}`).sort());
        expect(r.addresses).toEqual([...new Set(live.map((v) => v.address))].sort());
      };
      fileIsRecord();
      // first, last, middle; added and removed, one or more at a time
      for (const [add, remove] of [
        [[], [5]], // the last of both lists
        [[0], []],
        [[9], []],
        [[6], [0]],
        [[], [9]],
        [[7, 8], [3]],
        [[], [1, 2, 4, 6, 7]],
        [[10], [8]],
      ] as const) {
        const added = add.map(svc);
        const gone = live.filter((v) => remove.some((i) => v.address === svc(i).address));
        const next = nodeState([...live.filter((v) => !gone.includes(v)), ...added]);
        const r = await dp.apply(next, {
          previous: s,
          virtualServers: added,
          removedVirtualServers: gone.map((v) => `TCP/${v.address}:${v.port}`),
        });
        expect(r.verified).toBe(true);
        live = next.virtualServers as typeof live;
        s = next;
        fileIsRecord();
      }
    });

    it('a service that comes or goes still saves the superset first and the record after (a crash mid-run never forgets what it created)', async () => {
      const store = new MemoryOwnershipStore();
      const kernel = new FakeIpvsKernel();
      const dp = new IpvsDataplane({ kernel, store, kernelRelease: '6.1.0' });
      const a = vs('10.96.0.1', 80, [['10.1.0.1', 8080]]);
      const b = vs('10.96.0.2', 80, [['10.1.0.2', 8080]]);
      const s = nodeState([a]);
      await dp.apply(s);
      const saves = vi.spyOn(store, 'save');
      const next = nodeState([a, b]);
      const r = await dp.apply(next, { previous: s, virtualServers: [b], removedVirtualServers: [] });
      expect(r.verified).toBe(true);
      expect(saves.mock.calls[0]![0].virtualServers).toEqual(['TCP/10.96.0.1:80', 'TCP/10.96.0.2:80']);
      expect(store.record.virtualServers).toEqual(['TCP/10.96.0.1:80', 'TCP/10.96.0.2:80']);
      expect(store.record.addresses).toEqual(['10.96.0.1', '10.96.0.2']);
    });
  });
});
