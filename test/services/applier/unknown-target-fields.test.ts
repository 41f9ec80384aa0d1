// probe15 U7: an applier applies and ACKs a target whose entries carry fields its release does not
// know (a newer planner's), ignoring them without a word: what it does not render (a Node's
// `beingRemoved` → /healthz) showed nowhere. Now it notes them (key paths, bounded), says them once
// per version in its log, and carries them in its heartbeat and /healthz. Never a NACK: that would
// stall the fleet during every planner-first upgrade. Real nats-server, in-process dry-run applier;
// the versions are published as a newer planner would (VersionMaker: entries hashed whole).
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAX_UNKNOWN_FIELD_PATHS,
  type Heartbeat,
  type NodeFacts,
  type ServiceEntry,
} from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { nodeCred, startBusWorld, WatchedDataplane, type BusWorld } from '../../libs/bus/bus-harness.ts';
import { node, service, VersionMaker } from '../../libs/bus/fixtures.ts';

let world: BusWorld | undefined;
let svc: ApplierService | undefined;
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
  await world?.close();
  world = undefined;
});

/** The applier's log lines (pino JSON), as an operator reads them. */
function capturedLogger() {
  const lines: { level: number; msg: string; version?: number }[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines };
}

async function healthz(port: number): Promise<Record<string, unknown>> {
  return (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as Record<string, unknown>;
}

/** Publishes the maker's next version and moves the default target to it. */
async function publish(w: BusWorld, m: VersionMaker, delta: Parameters<VersionMaker['next']>[0]): Promise<number> {
  const v = m.next(delta);
  await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
  await w.targets.setDefaultTarget({ version: v.delta.version, configRevision: 0 });
  return v.delta.version;
}

async function start(w: BusWorld) {
  const { logger, lines } = capturedLogger();
  svc = await startApplierService({
    node: 'n1',
    nats: w.server.url,
    mode: 'dry-run',
    http: '127.0.0.1:0',
    dataplane: new WatchedDataplane(),
    auth: nodeCred('n1'),
    verifier: w.verifier,
    heartbeatMs: 100,
    logger,
  });
  return { lines, port: svc.httpPort! };
}

/** The first heartbeat after the ACK of `version` (it says what the node runs now). */
async function heartbeatAfterAck(w: BusWorld, version: number): Promise<Heartbeat> {
  const ack = await w.received.waitFor((e) => e.kind === 'ack' && e.v.version === version, `ack ${version}`);
  const from = w.received.all.indexOf(ack) + 1;
  const hb = await w.received.waitFor((e) => e.kind === 'hb' && e.v.appliedVersion === version, 'a heartbeat', {
    from,
  });
  return (hb as { v: Heartbeat }).v;
}

const unknownLines = (lines: { msg: string }[]) => lines.filter((l) => /does not know/.test(l.msg));

describe('target fields the applier does not know', () => {
  it('applies and ACKs a target with fields it does not know, and names them in its log, heartbeat and /healthz', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const { lines, port } = await start(world);

    // a target without unknown fields: nothing said, no field
    const calm = await heartbeatAfterAck(world, 1);
    expect(calm.unknownTargetFields).toBeUndefined();
    expect((await healthz(port)).unknownTargetFields).toBeNull();
    expect(unknownLines(lines)).toEqual([]);

    // a newer planner's fields: on a Node, and on an endpoint deep in a service
    const s = service(2);
    const newer: ServiceEntry = {
      ...s,
      ports: [{ ...s.ports[0]!, endpoints: s.ports[0]!.endpoints.map((e) => ({ ...e, weight: 3 })) }],
    };
    const leaving = { ...node('n1'), drainingSince: '2026-12-03T00:00:00Z' } as NodeFacts;
    await publish(world, m, { upsertServices: [newer], upsertNodes: [leaving] });
    const hb = await heartbeatAfterAck(world, 2);
    const fields = { paths: ['services[].ports[].endpoints[].weight', 'nodes[].drainingSince'], otherKeys: 0 };
    expect(hb.unknownTargetFields).toEqual(fields);
    expect(hb.healthy).toBe(true); // no failure: the word stays what the hashes say
    expect(world.received.all.some((e) => e.kind === 'nack')).toBe(false);
    expect((await healthz(port)).unknownTargetFields).toEqual(fields);
    const said = unknownLines(lines);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 40, version: 2 });
    expect(said[0]!.msg).toBe(
      'version 2 carries target fields this applier does not know (services[].ports[].endpoints[].weight, nodes[].drainingSince): applied without them; an applier of an older release than the planner, upgrade it',
    );

    // a version that brings none says nothing more (what was noted stays in the heartbeat)
    await publish(world, m, { upsertServices: [service(3)] });
    const later = await heartbeatAfterAck(world, 3);
    expect(later.unknownTargetFields).toEqual(fields);
    expect(unknownLines(lines)).toHaveLength(1);
  }, 20_000);

  it('stays bounded for a target with thousands of unknown keys', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    await publish(world, m, { upsertServices: [service(1)], upsertNodes: [node('n1')] });
    const { lines } = await start(world);
    await heartbeatAfterAck(world, 1);

    const hostile: Record<string, unknown> = { ...node('n2'), [`line\nbreak${'x'.repeat(10_000)}`]: 1 };
    for (let i = 0; i < 5000; i++) hostile[`k${i}`] = { deeper: i };
    const flood = service(4, 200).ports[0]!.endpoints.map((e) => ({ ...e, extra: 1 }));
    const s = service(4);
    await publish(world, m, {
      upsertNodes: [hostile as unknown as NodeFacts],
      upsertServices: [{ ...s, ports: [{ ...s.ports[0]!, endpoints: flood }] }],
    });
    const hb = await heartbeatAfterAck(world, 2);
    const f = hb.unknownTargetFields!;
    expect(f.paths).toHaveLength(MAX_UNKNOWN_FIELD_PATHS);
    // each occurrence past the named paths counted, never listed: 5001 node keys + 200 endpoints' `extra`
    expect(f.paths.length + f.otherKeys).toBeLessThanOrEqual(5001 + 1);
    expect(f.otherKeys).toBeGreaterThan(4000);
    // a key that is no plain name is quoted and cut: one printable line
    expect(f.paths[1]).toMatch(/^nodes\[\]\."line\\nbreakx+…"$/);
    for (const p of f.paths) expect(p.length).toBeLessThan(120);
    expect(JSON.stringify(hb).length).toBeLessThan(4000);
    expect(unknownLines(lines)).toHaveLength(1);
    expect(JSON.stringify(unknownLines(lines)[0]).length).toBeLessThan(4000);
  }, 20_000);
});
