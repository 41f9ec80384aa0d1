import { describe, expect, it } from 'vitest';
import { readKubeObject, type EndpointSliceObject } from '../../../libs/model/index.ts';
import {
  SHARED_NAME_MAX_LENGTH,
  SHARED_NAMES_KEPT,
  sharedName,
  sharedNamesKept,
} from '../../../libs/model/shared-names.ts';

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
    const r = readKubeObject({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { namespace: 'default', name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: [
        { addresses: ['10.0.0.1'], nodeName: node, zone: 'europe-west1-b' },
        { addresses: ['10.0.0.2'], nodeName: node, zone: 'europe-west1-b' },
      ],
    });
    expect(r.ok).toBe(true);
    const slice = (r as { object: EndpointSliceObject }).object;
    expect(slice.endpoints.map((e) => [e.nodeName, e.zone])).toEqual([
      [node, 'europe-west1-b'],
      [node, 'europe-west1-b'],
    ]);
    const kept = sharedNamesKept();
    sharedName(node);
    sharedName('europe-west1-b');
    expect(sharedNamesKept()).toBe(kept); // both already kept by the read
  });
});
