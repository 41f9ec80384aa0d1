import { describe, expect, it } from 'vitest';
import {
  parseManifestText,
  type ClusterData,
  type EndpointSliceObject,
  type KubeObject,
} from '../../../libs/model/index.ts';
import { ClusterDataIndex, ClusterState } from '../../../libs/planner/index.ts';
import {
  SHARED_NAME_MAX_LENGTH,
  SHARED_NAMES_KEPT,
  sharedName,
  sharedNamesKept,
} from '../../../libs/model/shared-names.ts';
import { service, slice } from '../../support/plan-fixture.ts';

/** Service web and one slice of two endpoints on `node` in `zone`, as read from a manifest. */
function webObjects(node: string, zone: string): KubeObject[] {
  const r = parseManifestText(
    service('web', 'clusterIP: 10.96.0.10\n  ports: [{name: http, port: 80, targetPort: 8080}]') +
      slice('web', '[{name: http, port: 8080, protocol: TCP}]', [
        `{addresses: [10.0.0.1], nodeName: ${node}, zone: ${zone}}`,
        `{addresses: [10.0.0.2], nodeName: ${node}, zone: ${zone}}`,
      ]),
    'web.yaml',
  );
  expect(r.rejected).toEqual([]);
  return r.objects;
}

describe('sharedName: one copy of a name many endpoints repeat', () => {
  it('keeps a name once however often it is read, and gives back the same value', () => {
    const name = `ip-10-0-1-23.eu-west-1.compute.internal-${Math.random()}`;
    const before = sharedNamesKept();
    expect(sharedName(name)).toBe(name);
    const after = sharedNamesKept();
    expect(after === before + 1 || after === 1).toBe(true); // 1: the table had just started over
    expect(sharedName(`${name}`)).toBe(name);
    expect(sharedNamesKept()).toBe(after);
  });

  it('stays bounded: past its size it starts over, and a name longer than a node name is never kept', () => {
    for (let i = 0; i < SHARED_NAMES_KEPT + 100; i++) sharedName(`node-${i}.bounded.example`);
    expect(sharedNamesKept()).toBeLessThanOrEqual(SHARED_NAMES_KEPT);
    expect(sharedNamesKept()).toBeGreaterThan(0);
    const kept = sharedNamesKept();
    const long = 'n'.repeat(SHARED_NAME_MAX_LENGTH + 1);
    expect(sharedName(long)).toBe(long);
    expect(sharedNamesKept()).toBe(kept);
  });

  it('is what the reader reads an endpoint’s node and zone through: the values are the API’s', () => {
    const node = 'gke-cluster-1-default-pool-4a3f9c2e-x7k2';
    const webSlice = webObjects(node, 'europe-west1-b').find(
      (o): o is EndpointSliceObject => o.kind === 'EndpointSlice',
    )!;
    expect(webSlice.endpoints.map((e) => [e.nodeName, e.zone])).toEqual([
      [node, 'europe-west1-b'],
      [node, 'europe-west1-b'],
    ]);
    const kept = sharedNamesKept();
    sharedName(node);
    sharedName('europe-west1-b');
    expect(sharedNamesKept()).toBe(kept); // both already kept by the read
  });
});

describe('an applier’s entries decoded from the wire share their node and zone names', () => {
  it('keeps the values, the hash and the freezing, and reads the names through the table', () => {
    const node = `ip-10-0-7-${Math.floor(Math.random() * 1e9)}.eu-west-1.compute.internal`;
    const zone = `europe-west-${Math.floor(Math.random() * 1e9)}-b`;
    const planned = ClusterState.fromObjects(webObjects(node, zone)).data; // frozen entries
    const wire = JSON.stringify(planned.toClusterData());
    // the table starts over: the names are new to it, as on a node that has not read them yet
    let i = 0;
    do sharedName(`filler-${i++}.example.internal`);
    while (sharedNamesKept() !== 1);
    const before = sharedNamesKept();
    const applier = ClusterDataIndex.from(JSON.parse(wire) as ClusterData);
    expect(sharedNamesKept()).toBe(before + 2); // the node and the zone, once each for two endpoints
    expect(applier.hash()).toBe(planned.hash());
    const entry = applier.service('default/web')!;
    expect(entry).toEqual(planned.service('default/web'));
    expect(Object.isFrozen(entry.ports[0]!.endpoints[0])).toBe(true);
    // a frozen entry (the planner's own) goes in as it is
    expect(() => ClusterDataIndex.from(planned.toClusterData())).not.toThrow();
  });
});
