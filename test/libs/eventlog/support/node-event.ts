import type { WatchEvent } from '../../../../libs/model/index.ts';

/** A Node ADDED watch event, as the informer would hand it over (name, resourceVersion varied). */
export const nodeEvent = (name: string, rv: number): WatchEvent => ({
  kind: 'Node',
  type: 'ADDED',
  origin: 'watch',
  namespace: '',
  name,
  uid: `u-${name}`,
  resourceVersion: String(rv),
  object: {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, resourceVersion: String(rv) },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.1.1' }] },
  },
});
