import type { NatsConnection } from '@nats-io/transport-node';
import { AckCollector } from '../../libs/bus/ack-collector.ts';
import { connectBus, type BusAuth } from '../../libs/bus/bus-connection.ts';
import { TargetStore } from '../../libs/bus/target-store.ts';
import { VersionPublisher } from '../../libs/bus/version-publisher.ts';
import type { PlannerBus } from './planner-bus.ts';

/**
 * PlannerBus over NATS: libs/bus's VersionPublisher, TargetStore and AckCollector. The collector
 * takes a node's identity from the subject its credentials allow and drops payloads that do not
 * parse or claim another node, so one bad node cannot stop (or forge) the others' reports.
 */
export class NatsPlannerBus implements PlannerBus {
  private collector: Promise<AckCollector> | undefined;

  private constructor(private readonly nc: NatsConnection, private readonly publisher: VersionPublisher, private readonly targets: TargetStore, private readonly ownsConnection: boolean) {}

  static async open(o: { url?: string; nc?: NatsConnection; checkpointEvery?: number; auth?: BusAuth }): Promise<NatsPlannerBus> {
    const nc = o.nc ?? await connectBus({ servers: (o.url ?? '').split(',').filter(Boolean), name: 'switchboard-planner', auth: o.auth });
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
    // The planner awaits its hooks one at a time; chain them so reports are handled in arrival order.
    let chain: Promise<void> = Promise.resolve();
    const queue = (fn: () => Promise<void> | void) => {
      chain = chain.then(fn).catch(() => undefined); // the hook records its own failures
    };
    this.collector = AckCollector.start({
      nc: this.nc,
      callbacks: {
        onAck: (a) => queue(() => hooks.onAck(a)),
        onNack: (n) => queue(() => hooks.onAck(n)),
        onHeartbeat: (h) => queue(() => hooks.onHeartbeat(h)),
      },
    });
  }

  async close(): Promise<void> {
    (await this.collector)?.stop();
    if (this.ownsConnection) await this.nc.drain();
  }
}
