import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { TargetStore } from '../../libs/bus/target-store.ts';
import { VersionPublisher } from '../../libs/bus/version-publisher.ts';
import { ACK_WILDCARD, HEARTBEAT_WILDCARD } from '../../libs/bus/subjects.ts';
import type { AckOrNack, Heartbeat } from '../../libs/model/index.ts';
import type { PlannerBus } from './planner-bus.ts';

/**
 * PlannerBus over NATS: libs/bus's VersionPublisher and TargetStore, plus ack/heartbeat
 * subscriptions. libs/bus has no ack collector yet, so this reads sb.ack.* / sb.hb.* itself and
 * drops messages that do not parse (a bad node must not stop the collection of the others).
 */
export class NatsPlannerBus implements PlannerBus {
  private subs: Subscription[] = [];

  private constructor(private readonly nc: NatsConnection, private readonly publisher: VersionPublisher, private readonly targets: TargetStore, private readonly ownsConnection: boolean) {}

  static async open(o: { url?: string; nc?: NatsConnection; checkpointEvery?: number }): Promise<NatsPlannerBus> {
    const nc = o.nc ?? await connect({ servers: o.url, name: 'switchboard-planner' });
    const publisher = await VersionPublisher.open({ nc, checkpointEvery: o.checkpointEvery });
    const targets = await TargetStore.open({ nc });
    return new NatsPlannerBus(nc, publisher, targets, !o.nc);
  }

  lastPublishedVersion(): number {
    return this.publisher.lastPublishedVersion();
  }

  async publish(...[artifact, data]: Parameters<PlannerBus['publish']>): Promise<void> {
    const { form: _f, delta, ...header } = artifact;
    await this.publisher.publishNext({ header, delta, data });
  }

  putConfigRevision: PlannerBus['putConfigRevision'] = (rev) => this.targets.putConfigRevision(rev);

  async setDefaultTarget(t: Parameters<PlannerBus['setDefaultTarget']>[0]): Promise<void> {
    await this.targets.setDefaultTarget(t);
  }

  async setNodeTarget(...[node, t]: Parameters<PlannerBus['setNodeTarget']>): Promise<void> {
    if (t) await this.targets.setNodeTarget(node, t);
    else await this.targets.clearNodeTarget(node);
  }

  listen(hooks: Parameters<PlannerBus['listen']>[0]): void {
    const run = async <T>(subject: string, valid: (v: unknown) => v is T, fn: (v: T) => Promise<void> | void) => {
      const sub = this.nc.subscribe(subject);
      this.subs.push(sub);
      for await (const m of sub) {
        let v: unknown;
        try {
          v = m.json();
        } catch {
          continue;
        }
        if (!valid(v)) continue;
        try {
          await fn(v);
        } catch {
          // The hook records its own failures; one bad message must not end the subscription.
        }
      }
    };
    void run(ACK_WILDCARD, isAck, hooks.onAck);
    void run(HEARTBEAT_WILDCARD, isHeartbeat, hooks.onHeartbeat);
  }

  async close(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    if (this.ownsConnection) await this.nc.drain();
  }
}

function isAck(v: unknown): v is AckOrNack {
  const a = v as AckOrNack;
  return !!a && typeof a === 'object' && (a.type === 'ACK' || a.type === 'NACK') && typeof a.node === 'string'
    && Number.isSafeInteger(a.version) && Number.isSafeInteger(a.configRevision);
}

function isHeartbeat(v: unknown): v is Heartbeat {
  const h = v as Heartbeat;
  return !!h && typeof h === 'object' && typeof h.node === 'string' && Number.isSafeInteger(h.appliedVersion);
}
