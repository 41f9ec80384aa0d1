import v8 from 'node:v8';
import vm from 'node:vm';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterEach, expect, it } from 'vitest';
import { heartbeatSubject } from '../../../libs/bus/index.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { plannerEnv, type PlannerEnv } from './planner-support.ts';

// probe21 P21-1: each role change makes a new Planner listen for reports (bus.listen), and the
// previous collector's sb.ack.* / sb.hb.* subscriptions were unsubscribed only once the previous
// collector's flush had answered. A role change happens when NATS goes away (the lease is lost),
// so that flush often failed ("connection disconnected"): the subscriptions it had made stayed
// on the connection for ever (the client re-sends them on every reconnect), feeding every report
// to a stopped Planner too. In the soak, after 15 min of NATS restarts and freezes each planner
// connection held sb.ack.* and sb.hb.* 4–5 times over.

// A first fix stopped the previous collector from a closure in listen(): V8 put `previous` in the
// context listen()'s closures share, so each collector held the one before it and every earlier
// Planner (19 after 11 role changes in the soak). Each role's hooks must be collectable once it ended.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

let env: PlannerEnv | undefined;
let nc: NatsConnection | undefined;
afterEach(async () => {
  await nc?.close();
  nc = undefined;
  await env?.cleanup();
  env = undefined;
});

/** Resolves at the connection's next status event of `type`. */
async function next(c: NatsConnection, type: string): Promise<void> {
  for await (const s of c.status()) if (s.type === type) return;
}

const beat = () =>
  JSON.stringify({
    node: 'n1',
    appliedVersion: 1,
    appliedConfigRevision: 1,
    mode: 'ipvs',
    healthy: true,
    detail: '',
    at: new Date().toISOString(),
  });

it('only the newest listener hears reports after role changes made while NATS was away', {
  timeout: 20_000,
}, async () => {
  env = await plannerEnv();
  nc = await connect({ servers: env.nats.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
  const bus = await NatsPlannerBus.open({ nc });
  const heard: number[] = [];
  const held: WeakRef<object>[] = [];
  const hooks = (i: number) => {
    const h = {
      onAck: async () => {},
      onHeartbeat: async () => {
        heard[i] = (heard[i] ?? 0) + 1;
      },
    };
    held[i] = new WeakRef(h);
    return h;
  };
  const ROLE_CHANGES = 5;
  try {
    bus.listen(hooks(0));
    await nc.flush();
    for (let i = 1; i <= ROLE_CHANGES; i++) {
      // NATS goes away; the planner changes role meanwhile (a new Planner listens)
      const down = next(nc, 'disconnect');
      await env.nats.kill();
      await down;
      bus.listen(hooks(i));
      const back = next(nc, 'reconnect');
      await env.nats.start();
      await back;
    }
    const last = ROLE_CHANGES + 1;
    bus.listen(hooks(last));
    await nc.flush();
    // one heartbeat; the flush's round trip delivers every copy of it before it answers
    const pub = await connect({ servers: env.nats.url });
    pub.publish(heartbeatSubject('n1'), beat());
    await pub.flush();
    await pub.close();
    await expect.poll(() => heard[last] ?? 0).toBe(1);
    await nc.flush();
    expect(Array.from(heard, (n) => n ?? 0)).toEqual([...Array(last).fill(0), 1]);
    await new Promise((r) => setTimeout(r, 0)); // WeakRefs let go after the job that made them
    gc();
    expect(held.map((w) => w.deref() !== undefined)).toEqual([...Array(last).fill(false), true]);
  } finally {
    await bus.close(100);
  }
});
