// A service whose Service and EndpointSlices arrive in one batch (an initial list, a relist, a
// burst) is built and hashed once, when the data is next read, not once per object.

import { describe, expect, it, vi } from 'vitest';
import { parseManifestText } from '../../../libs/model/index.ts';
// buildServiceEntry through the index is the same (mocked) binding ClusterState calls.
import { buildServiceEntry, ClusterState } from '../../../libs/planner/index.ts';
import { NODES, service, slice } from '../../support/plan-fixture.ts';

// The module ClusterState imports it from (a mock needs that module's path, not the index).
vi.mock('../../../libs/planner/build-service-entry.ts', async (importOriginal) => {
  const real = await importOriginal<{ buildServiceEntry: typeof buildServiceEntry }>();
  return { ...real, buildServiceEntry: vi.fn(real.buildServiceEntry) };
});

const objects = parseManifestText(
  NODES +
    service('web', 'clusterIP: 10.96.0.1\n  ports: [{name: http, port: 80}]') +
    slice('web', '[{name: http, port: 8080}]', ['{addresses: [10.244.1.2], nodeName: node-a}'], { name: 'web-1' }) +
    slice('web', '[{name: http, port: 8080}]', ['{addresses: [10.244.1.3], nodeName: node-a}'], { name: 'web-2' }),
  't',
).objects;

describe('ClusterState builds a changed service once per batch', () => {
  it('one build for a Service and its two slices applied together; one more after the next change', () => {
    const built = vi.mocked(buildServiceEntry);
    const s = new ClusterState();
    for (const o of objects) s.apply({ op: 'upsert', object: o });
    expect(built).not.toHaveBeenCalled(); // nothing is built until the data is read
    const d = s.commit()!;
    expect(built).toHaveBeenCalledTimes(1);
    expect(d.upsertServices.map((e) => e.ports[0]!.endpoints.map((x) => x.ip).sort())).toEqual([
      ['10.244.1.2', '10.244.1.3'],
    ]);
    expect(s.hash()).toBe(ClusterState.fromObjects(objects).hash());
    built.mockClear();
    s.apply({ op: 'delete', kind: 'EndpointSlice', namespace: 'default', name: 'web-2' });
    s.apply({ op: 'delete', kind: 'EndpointSlice', namespace: 'default', name: 'web-1' });
    expect(s.commit()!.upsertServices[0]!.ports[0]!.endpoints).toEqual([]);
    expect(built).toHaveBeenCalledTimes(1);
  });

  it('buildReady builds a service once its Service and a slice are in, and leaves one with no slice yet', () => {
    const built = vi.mocked(buildServiceEntry);
    built.mockClear();
    const lone = parseManifestText(
      service('lone', 'clusterIP: 10.96.0.9\n  ports: [{name: http, port: 80}]'),
      't',
    ).objects;
    const s = new ClusterState();
    const [web2, ...rest] = [...objects].reverse(); // web-2 last in, so web has its Service and web-1 first
    for (const o of [...rest.reverse(), ...lone]) s.apply({ op: 'upsert', object: o });
    s.buildReady();
    expect(built).toHaveBeenCalledTimes(1); // web (Service + web-1); lone has no slice yet
    expect(built.mock.calls[0]![0].meta.name).toBe('web');
    s.apply({ op: 'upsert', object: web2! });
    const d = s.commit()!;
    expect(built).toHaveBeenCalledTimes(3); // web again (web-2 came), lone at the read
    expect(d.upsertServices.map((e) => e.key)).toEqual(['default/lone', 'default/web']);
    expect(s.hash()).toBe(ClusterState.fromObjects([...objects, ...lone]).hash());
  });
});
