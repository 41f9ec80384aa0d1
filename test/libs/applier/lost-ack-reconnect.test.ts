import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBus } from '../../../libs/bus/index.ts';
import { ApplierSession, type SessionEvent } from '../../../libs/applier/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';
import { Events, nodeCred, startBusWorld, WatchedDataplane, type BusWorld } from '../bus/bus-harness.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

/**
 * probe14 P1: an ACK written into a connection that has gone half-open (a link that silently drops
 * everything: no reset, so the client notices only when its PINGs go unanswered, seconds later) is
 * lost, since reports are core NATS. The planner's rollout gate and ack log read ACKs, not
 * heartbeats: a canary that applied its revision was failed at the wave timeout and rolled back.
 * The half-open link is a TCP relay here that stops relaying the connections open when cut (their
 * bytes are read and dropped, nothing is closed) while new connections go through.
 */
class Blackhole {
  private readonly pairs: { a: Socket; b: Socket; cut: boolean }[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: { host: string; port: number }): Promise<Blackhole> {
    let hole: Blackhole | undefined;
    const server = createServer((a) => {
      const b = tcpConnect(target.port, target.host);
      const pair = { a, b, cut: false };
      hole?.pairs.push(pair);
      a.on('data', (d) => void (pair.cut || b.write(d)));
      b.on('data', (d) => void (pair.cut || a.write(d)));
      for (const [x, y] of [
        [a, b],
        [b, a],
      ] as const) {
        x.on('error', () => y.destroy());
        x.on('close', () => void (pair.cut || y.destroy()));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    hole = new Blackhole(server, `nats://127.0.0.1:${port}`);
    return hole;
  }

  /** Every connection open now goes silent both ways (half-open); later ones are relayed. */
  cut(): void {
    for (const p of this.pairs) p.cut = true;
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Applies wait while `hold` is set: the test cuts the link between the apply and its ACK. */
class HeldDataplane extends WatchedDataplane {
  hold: { entered: () => void; release: Promise<void> } | undefined;
  override async apply(state: NodeState) {
    const h = this.hold;
    if (h) {
      this.hold = undefined;
      h.entered();
      await h.release;
    }
    return super.apply(state);
  }
}

let world: BusWorld | undefined;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
  await world?.close();
  world = undefined;
});

describe('an ACK lost on a half-open connection', () => {
  it('is sent again once the applier has reconnected', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const w = world;
    const m = new VersionMaker();
    const publish = async (delta: Parameters<VersionMaker['next']>[0]) => {
      const v = m.next(delta);
      await w.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    };
    await publish({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await w.targets.setDefaultTarget({ version: 1, configRevision: 0 });

    const hole = await Blackhole.start({ host: '127.0.0.1', port: w.server.port });
    closers.push(() => hole.close());
    // PINGs every 500 ms, not the 2 s connectBus sets: the client notices the silent link after
    // ~1.5 s rather than ~6 s (what is tested is what the session does once it reconnected)
    const nc = await connectBus({
      servers: hole.url,
      name: 'applier-n1',
      node: 'n1',
      auth: nodeCred('n1'),
      extra: { pingInterval: 500 },
    });
    closers.push(() => nc.close());
    const dataplane = new HeldDataplane();
    const events = new Events<SessionEvent>();
    const session = await ApplierSession.start({
      nc,
      node: 'n1',
      dataplane,
      heartbeatMs: 0, // no heartbeats: only ACKs count here, as for the rollout gate
      retryMs: 200,
      onEvent: (e) => events.push(e),
      verifier: w.verifier,
    });
    closers.push(() => session.stop());
    const ackOf = (v: number) => (e: BusWorld['received']['all'][number]) => e.kind === 'ack' && e.v.version === v;
    await w.received.waitFor(ackOf(1), 'ack 1');

    let entered!: () => void;
    let release!: () => void;
    const inApply = new Promise<void>((r) => (entered = r));
    dataplane.hold = { entered: () => entered(), release: new Promise<void>((r) => (release = r)) };
    await publish({ upsertServices: [service(2)] });
    await w.targets.setDefaultTarget({ version: 2, configRevision: 0 });
    await inApply;
    hole.cut(); // the ACK of version 2 goes into the silent connection
    const mark = events.mark();
    release();
    await events.waitFor((e) => e.type === 'ack' && e.ack.version === 2, 'the session sent ack 2', { from: mark });
    await events.waitFor((e) => e.type === 'connection' && e.status === 'reconnect', 'reconnect', {
      from: mark,
      timeoutMs: 20_000,
    });
    const again = await w.received.waitFor(ackOf(2), 'ack 2 on the planner side after the reconnect');
    expect(again.kind === 'ack' && again.v).toMatchObject({ node: 'n1', version: 2, configRevision: 0 });
    expect(dataplane.applies).toBe(2); // sent again, not applied again
  }, 40_000);
});
