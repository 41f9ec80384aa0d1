// An incremental cycle's slice carries the drains of exactly the services the change touches, and
// finds them without walking every drain the record holds: a rollout leaves hundreds pending until
// the next full cycle, and each change walked them all (docs/benchmarks.md, "Drains pending").
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ownedIndex, sliceChange } from '../../../../libs/dataplane/ipvs/change-slice.ts';
import { drainingKey, splitDrainingKey } from '../../../../libs/dataplane/ipvs/graceful-termination.ts';
import { KernelModel } from '../../../../libs/dataplane/ipvs/kernel-model.ts';
import { drainingInSlice, narrowService } from '../../../../libs/dataplane/ipvs/narrowed-service.ts';
import { EMPTY_OBSERVED } from '../../../../libs/dataplane/ipvs/observed-kernel.ts';
import { EMPTY_RECORD, type OwnershipRecord } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import type { StateChange } from '../../../../libs/dataplane/ipvs/state-change.ts';
import { virtualServerKey, type VirtualServer } from '../../../../libs/model/index.ts';
import { nodeState, vs } from './node-state-fixture.ts';

const service = (i: number, endpoints = 2): VirtualServer =>
  vs(
    `10.96.0.${i + 1}`,
    80,
    Array.from({ length: endpoints }, (_, e): [string, number] => [`10.244.${i}.${e + 1}`, 8080]),
  );
const keyOf = (i: number) => virtualServerKey(service(i));
const change = (services: VirtualServer[], removed: string[] = []): StateChange => ({
  virtualServers: services,
  removedVirtualServers: removed,
  addedAddresses: [],
  removedAddresses: [],
  ipsets: [],
});
const recordWith = (draining: Record<string, number>): OwnershipRecord => ({
  ...EMPTY_RECORD,
  virtualServers: Array.from({ length: 8 }, (_, i) => keyOf(i)).sort(),
  draining,
});

describe('sliceChange: the drains in the slice', () => {
  it("are the record's drains of the services the change touches (narrowed: those it decides again) (property)", () => {
    const drain = fc.record({ service: fc.integer({ min: 0, max: 7 }), endpoint: fc.integer({ min: 1, max: 80 }) });
    fc.assert(
      fc.property(
        fc.array(drain, { maxLength: 30 }),
        fc.subarray([0, 1, 2, 3, 4, 5, 6, 7], { minLength: 1 }),
        fc.subarray([0, 1, 2, 3, 4, 5, 6, 7]),
        fc.boolean(),
        (drains, changed, removedOnes, narrowFirst) => {
          const draining = Object.fromEntries(
            drains.map((d, n) => [drainingKey(keyOf(d.service), `10.244.${d.service}.${d.endpoint}:8080`), 1000 + n]),
          );
          const removed = removedOnes.filter((i) => !changed.includes(i)).map(keyOf);
          // the first changed service may be a large one, narrowed: only its changed real servers count
          const big = (i: number) => service(i, 70);
          const first = changed[0]!;
          const before = narrowFirst ? big(first) : service(first);
          const after = narrowFirst ? { ...before, realServers: before.realServers.slice(1) } : before;
          const services = changed.map((i) => (i === first ? after : service(i)));
          const narrowed = narrowFirst
            ? new Map([[keyOf(first), narrowService(before, after)!]])
            : new Map<string, ReturnType<typeof narrowService> & object>();
          const slice = sliceChange(
            nodeState(services),
            change(services, removed),
            KernelModel.fromObserved(EMPTY_OBSERVED),
            ownedIndex(recordWith(draining)),
            narrowed,
          );
          const touched = new Set([...changed.map(keyOf), ...removed]);
          const want = Object.fromEntries(
            Object.entries(draining).filter(
              ([dk]) => touched.has(splitDrainingKey(dk).vsKey) && drainingInSlice(dk, narrowed),
            ),
          );
          expect(slice.record.draining).toEqual(want);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('are found without a walk of every drain the record holds, once per record', () => {
    const draining: Record<string, number> = {};
    for (let i = 0; i < 8; i++)
      for (let e = 1; e <= 50; e++) draining[drainingKey(keyOf(i), `10.244.${i}.${e}:8080`)] = e;
    let walks = 0;
    const counted = new Proxy(draining, {
      ownKeys(target) {
        walks++;
        return Reflect.ownKeys(target);
      },
    });
    const owned = ownedIndex(recordWith(counted));
    const model = KernelModel.fromObserved(EMPTY_OBSERVED);
    const drainsOf = (i: number) =>
      sliceChange(nodeState([service(i)]), change([service(i)]), model, owned).record.draining;
    const first = drainsOf(1);
    const walksAfterFirst = walks;
    const more = Array.from({ length: 20 }, (_, n) => drainsOf(n % 8));
    expect(walksAfterFirst).toBe(1);
    expect(walks).toBe(1);
    expect(Object.keys(first)).toHaveLength(50);
    expect(more.every((d, n) => Object.keys(d).every((dk) => splitDrainingKey(dk).vsKey === keyOf(n % 8)))).toBe(true);
  });
});
