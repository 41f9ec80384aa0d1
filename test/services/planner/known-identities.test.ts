// What the planner's informer starts from: the identities of the objects the log holds, read by
// SQLite's JSON functions (knownIdentitiesFromLog) instead of every object parsed here. They must be
// exactly what the informer would remember of the parsed objects (identityOf), or a resumed relist
// would report objects as changed or miss a deletion's labels.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import { identityOf, type RawKubeObject } from '../../../libs/kube/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { knownIdentitiesFromLog, knownObjectsFromLog } from '../../../services/planner/event-source.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-known-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let rv = 0;
function event(type: WatchEvent['type'], object: Record<string, unknown>): WatchEvent {
  const md = object.metadata as { name: string; namespace?: string; uid?: string };
  const kind = object.kind as WatchEvent['kind'];
  const resourceVersion = String(++rv);
  return {
    kind,
    type,
    origin: 'watch',
    namespace: md.namespace ?? (kind === 'Node' ? '' : 'default'),
    name: md.name,
    uid: md.uid ?? '',
    resourceVersion,
    object: { ...object, metadata: { ...md, resourceVersion } },
  };
}
const service = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'default', uid: `u-${name}`, ...extra },
  spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
});
const slice = (name: string, owner: string, labels: Record<string, string>) => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'apps', uid: `u-${name}`, labels },
  addressType: 'IPv4',
  ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true }, nodeName: `node-"é"-${owner}` }],
});

describe('knownIdentitiesFromLog', () => {
  it('is identityOf of every object knownObjectsFromLog reads: same kinds, order, fields; deleted ones left out', async () => {
    const log = await EventLog.open({ file: path.join(dir, 'log.db') });
    try {
      log.appendEvents([
        event(
          'ADDED',
          service('a', { labels: { app: 'a', 'ünï/cødé': 'x"y' }, annotations: { big: 'z'.repeat(5000) } }),
        ),
        event('ADDED', service('b')),
        event('ADDED', { ...service('no-uid'), metadata: { name: 'no-uid', namespace: 'default' } }),
        event('ADDED', slice('a-1', 'a', { 'kubernetes.io/service-name': 'a' })),
        event('ADDED', slice('b-1', 'b', {})),
        event('ADDED', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', uid: 'u-n1' }, status: {} }),
        event('MODIFIED', service('b', { labels: { tier: 'web' } })),
        event('DELETED', slice('a-1', 'a', { 'kubernetes.io/service-name': 'a' })),
        event('ADDED', { kind: 'Service', metadata: { name: 'bare', namespace: 'other' }, spec: {} }),
      ]);
      const full = knownObjectsFromLog(log);
      const ids = knownIdentitiesFromLog(log);
      expect(ids.lastResourceVersion).toBe(full.lastResourceVersion);
      expect([...ids.objects.keys()]).toEqual([...full.objects.keys()]);
      for (const [kind, list] of full.objects) {
        const expected = list.map((o) =>
          identityOf({ ...o, apiVersion: o.apiVersion ?? 'v1', kind: o.kind ?? kind } as RawKubeObject),
        );
        expect(ids.objects.get(kind)).toEqual(expected);
      }
      // what the fixture holds, so the comparison above cannot pass on empty lists
      expect(ids.objects.get('Service')?.map((o) => o.metadata.name)).toEqual(['a', 'no-uid', 'b', 'bare']);
      expect(ids.objects.get('Service')?.[0]?.metadata.labels).toEqual({ app: 'a', 'ünï/cødé': 'x"y' });
      expect(ids.objects.get('Service')?.[1]?.metadata).not.toHaveProperty('uid');
      expect(ids.objects.get('EndpointSlice')?.map((o) => o.metadata.name)).toEqual(['b-1']);
      expect(ids.objects.get('Node')?.[0]).toEqual({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: 'node-1', uid: 'u-n1', resourceVersion: '6' },
      });
    } finally {
      log.close();
    }
  });
});
