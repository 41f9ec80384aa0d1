import { afterEach, describe, expect, it } from 'vitest';
import { VersionReader } from '../../../libs/bus/index.ts';
import { DataSync } from '../../../libs/applier/index.ts';
import type { ServiceEntry } from '../../../libs/model/index.ts';
import { ClusterDataIndex } from '../../../libs/planner/index.ts';
import { startBusWorld, type BusWorld } from './bus-harness.ts';
import { node, service } from './fixtures.ts';

/** V8's longest string on 64-bit: one JSON.stringify of the checkpoint cannot be longer. */
const MAX_STRING = 2 ** 29 - 24;

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe('a checkpoint longer than V8 can hold in one string', () => {
  // ~13,500 services of ~40 KB of JSON each (the size of a 250-endpoint service), 2^29 + 2 %:
  // one JSON.stringify of it throws 'Invalid string length'. The planner's copy shares one long
  // port name so that the test holds ~0.6 GB (the node's decoded copy), not the fleet's worth.
  it('is published through JetStream in chunks and loaded by a node, hash verified', { timeout: 600_000 }, async () => {
    world = await startBusWorld({ nodes: [], checkpointEvery: 50 });
    const pad = `p${'x'.repeat(39_999)}`;
    const services: ServiceEntry[] = Array.from({ length: 13_500 }, (_, i) => {
      const s = service(i, 2);
      return { ...s, ports: [{ ...s.ports[0]!, name: pad }] };
    });
    const index = ClusterDataIndex.from({ services, nodes: [node('n1')] });
    const header = { version: 1, parent: 0, hash: index.hash(), reason: 'big', createdAt: '2025-01-01T00:00:00Z' };
    const published = await world.publisher.publishNext({
      header,
      delta: { upsertServices: services, removeServices: [], upsertNodes: [node('n1')], removeNodes: [] },
      data: () => index.toClusterData(),
    });
    // the whole cluster as a delta is over one message: the checkpoint, then a marker naming it
    const [cp, marker] = published;
    expect(cp).toMatchObject({ form: 'checkpoint', duplicate: false });
    expect(cp!.bytes).toBeGreaterThan(MAX_STRING); // ASCII: bytes = characters of its one JSON text
    expect(cp!.messages).toBe(Math.ceil(cp!.bytes / (512 * 1024)));
    expect(marker).toMatchObject({ form: 'delta', bytes: 0 });

    const sync = new DataSync(new VersionReader(world.planner, { verifier: world.verifier }), 50);
    const r = await sync.advanceTo(1);
    expect(r).toEqual({ ok: true, version: 1, hash: header.hash, bytes: cp!.bytes, path: 'checkpoint', patched: 0 });
    expect(sync.data.serviceCount).toBe(13_500);
    expect(sync.data.service('ns/svc-13499')?.ports[0]?.name).toBe(pad);
  });
});
