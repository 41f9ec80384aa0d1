// Chunked lists of the test apiserver against a snapshot taken when the list started: random
// creates, updates and deletes between pages must never show up in later pages (etcd serves
// every page at the first page's RV), and a selector that filters out the rest still leaves a
// continue token while keys remain (etcd's `more`), ending on a possibly empty page.

import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KubeApiServer, type KubeObject } from './kube-api-server/index.ts';

type Json = Record<string, any>;

const svc = (name: string, tier: string, port = 80): KubeObject => ({
  metadata: { name, namespace: 'default', labels: { tier } },
  spec: { type: 'ClusterIP', clusterIP: '10.96.0.10', ports: [{ name: 'http', port, protocol: 'TCP' }] },
});

async function getJson(server: KubeApiServer, path: string): Promise<{ status: number; body: Json }> {
  const res = await fetch(server.url + path);
  return { status: res.status, body: (await res.json()) as Json };
}

type Op = { type: 'create' | 'update' | 'delete'; name: string; port: number };
const nameArb = fc.integer({ min: 0, max: 39 }).map((n) => `s${String(n).padStart(2, '0')}`);
const opArb = fc.record({
  type: fc.constantFrom<Op['type']>('create', 'update', 'delete'),
  name: nameArb,
  port: fc.integer({ min: 1, max: 65535 }),
});

function applyOp(server: KubeApiServer, op: Op, tier: string): void {
  const exists = server.get('Service', { namespace: 'default', name: op.name }) !== undefined;
  if (op.type === 'create' && !exists) server.create('Service', svc(op.name, tier, op.port));
  else if (op.type === 'update' && exists) server.update('Service', svc(op.name, tier, op.port));
  else if (op.type === 'delete' && exists) server.delete('Service', { namespace: 'default', name: op.name });
}

describe('KubeApiServer chunked lists', () => {
  let server: KubeApiServer;
  beforeEach(async () => {
    server = await KubeApiServer.start();
  });
  afterEach(async () => {
    await server.stop();
  });

  it('serves every page at the first page RV, whatever changes between pages', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(nameArb, { maxLength: 30 }),
        fc.array(fc.array(opArb, { maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 7 }),
        async (setup, between, limit) => {
          for (const s of (await getJson(server, '/api/v1/services')).body.items) {
            server.delete('Service', { namespace: 'default', name: s.metadata.name });
          }
          for (const name of setup) server.create('Service', svc(name, 'a'));
          const snapshot = (await getJson(server, '/api/v1/services')).body;
          const seen: Json[] = [];
          let path = `/api/v1/services?limit=${limit}`;
          for (let page = 0; ; page++) {
            const { status, body } = await getJson(server, path);
            expect(status).toBe(200);
            expect(body.metadata.resourceVersion).toBe(snapshot.metadata.resourceVersion);
            seen.push(...body.items);
            const remaining = snapshot.items.length - seen.length;
            if (remaining > 0) expect(body.metadata.remainingItemCount).toBe(remaining);
            if (!body.metadata.continue) break;
            for (const op of between[page % between.length]!) applyOp(server, op, 'b');
            path = `/api/v1/services?limit=${limit}&continue=${body.metadata.continue}`;
          }
          expect(seen).toEqual(snapshot.items);
        },
      ),
      { numRuns: 40 },
    );
  }, 120_000); // a few hundred HTTP round trips: slow only when the machine is loaded

  it('with a selector, keeps a continue token while keys remain and may end on an empty page', async () => {
    for (const name of ['a', 'b', 'c', 'd', 'e'])
      server.create('Service', svc(name, name === 'a' || name === 'b' ? 'web' : 'db'));
    const first = await getJson(server, '/api/v1/services?limit=2&labelSelector=tier%3Dweb');
    expect(first.body.items.map((i: Json) => i.metadata.name)).toEqual(['a', 'b']);
    // etcd's `more`: c, d, e remain (they do not match); the apiserver gives no count with a selector.
    expect(first.body.metadata.continue).toBeTruthy();
    expect(first.body.metadata.remainingItemCount).toBeUndefined();
    const second = await getJson(
      server,
      `/api/v1/services?limit=2&labelSelector=tier%3Dweb&continue=${first.body.metadata.continue}`,
    );
    expect(second.body.items).toEqual([]);
    expect(second.body.metadata.continue).toBeUndefined();
    const exact = await getJson(server, '/api/v1/services?limit=5');
    expect(exact.body.items).toHaveLength(5);
    expect(exact.body.metadata.continue).toBeUndefined();
  });
});
