import type { NatsConnection } from '@nats-io/transport-node';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';
import { generateKeyPairSync } from 'node:crypto';
import {
  AckCollector,
  connectBus,
  renderServerAuthConfig,
  signerFromKey,
  TargetStore,
  VersionPublisher,
  verifierFromPem,
  type Signer,
  type Verifier,
} from '../../../libs/bus/index.ts';
import { ApplierSession, type ApplierSessionOptions, type SessionEvent } from '../../../libs/applier/index.ts';
import type { Ack, Heartbeat, Nack } from '../../../libs/model/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

/** Events that tests wait on (never sleep on): resolves on the first matching past or future event. */
export class Events<T> {
  readonly all: T[] = [];
  private waiters: { pred: (e: T) => boolean; res: (e: T) => void }[] = [];

  push(e: T): void {
    this.all.push(e);
    this.waiters = this.waiters.filter((w) => (w.pred(e) ? (w.res(e), false) : true));
  }

  /** `from`: only events at or after this index (see `mark()`). */
  waitFor(pred: (e: T) => boolean, what: string, opts: { from?: number; timeoutMs?: number } = {}): Promise<T> {
    const hit = this.all.slice(opts.from ?? 0).find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((res, rej) => {
      const t = setTimeout(
        () => rej(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.all.slice(-5))}`)),
        opts.timeoutMs ?? 10_000,
      );
      this.waiters.push({
        pred,
        res: (e) => {
          clearTimeout(t);
          res(e);
        },
      });
    });
  }

  mark(): number {
    return this.all.length;
  }
}

/** A dry-run dataplane that also counts cleanups (fail-static tests) and can be told to fail. */
export class WatchedDataplane extends DryRunDataplane {
  cleanups = 0;
  failNext: string | undefined;
  readonly states: NodeState[] = [];

  override async apply(state: NodeState) {
    if (this.failNext) {
      const m = this.failNext;
      this.failNext = undefined;
      throw new Error(m);
    }
    this.states.push(state);
    return super.apply(state);
  }

  override async cleanup() {
    this.cleanups++;
    return super.cleanup();
  }
}

/** Applies wait while `held` (set it, or pass it at construction) until unstick(): a node that heartbeats and never ACKs. */
export class HeldDataplane extends WatchedDataplane {
  private release!: () => void;
  private readonly released = new Promise<void>((r) => (this.release = r));
  constructor(public held = false) {
    super();
  }
  override async apply(state: NodeState) {
    if (this.held) await this.released;
    return super.apply(state);
  }
  unstick(): void {
    this.held = false;
    this.release();
  }
}

/** Resolves on the connection's next reconnect; call it before causing the disconnect. */
export function nextReconnect(nc: NatsConnection): Promise<void> {
  return (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') return;
  })();
}

export const PLANNER = { user: 'planner', password: 'planner-secret' };
export const nodeCred = (n: string) => ({ user: `node-${n}`, password: `pw-${n}` });

export interface BusWorld {
  readonly server: NatsServerHandle;
  readonly planner: NatsConnection;
  readonly publisher: VersionPublisher;
  readonly targets: TargetStore;
  /** The planner's key pair (everything the world's publisher and targets write is signed). */
  readonly signer: Signer;
  readonly verifier: Verifier;
  readonly received: Events<{ kind: 'ack'; v: Ack } | { kind: 'nack'; v: Nack } | { kind: 'hb'; v: Heartbeat }>;
  startApplier(
    node: string,
    o?: Partial<ApplierSessionOptions>,
  ): Promise<{
    session: ApplierSession;
    dataplane: WatchedDataplane;
    nc: NatsConnection;
    events: Events<SessionEvent>;
  }>;
  close(): Promise<void>;
}

/** A real nats-server with generated per-node permissions, a planner side and appliers on demand. */
export async function startBusWorld(o: {
  nodes: string[];
  checkpointEvery?: number;
  maxPayload?: number;
  /** Nothing signed and nothing verified (planner without --signing-key, appliers without --planner-key). */
  unsigned?: boolean;
  /** The publisher's VersionPublisherOptions.deltaParts (default: its own). */
  deltaParts?: number;
}): Promise<BusWorld> {
  const signer = signerFromKey(generateKeyPairSync('ed25519').privateKey);
  const verifier = verifierFromPem(signer.publicKeyPem);
  const server = await startNatsServer({
    jetstream: true,
    config: renderServerAuthConfig({
      planner: PLANNER,
      nodes: o.nodes.map((name) => ({ name, ...nodeCred(name) })),
      maxPayload: o.maxPayload,
    }),
  });
  const closers: (() => Promise<unknown>)[] = [];
  try {
    // Back 100 ms after a restart. Not `reconnectTimeWait: 100`, as it was: connectBus sets a
    // reconnectDelayHandler (250 ms doubling to 5 s), which nats.js asks instead, so that setting did
    // nothing and each restart test waited out the backoff (applier-session's two: ~5 s each).
    const planner = await connectBus({
      servers: server.url,
      name: 'planner',
      auth: PLANNER,
      extra: { reconnectDelayHandler: () => 100 },
    });
    closers.push(() => planner.close());
    const signs = o.unsigned ? undefined : signer;
    const publisher = await VersionPublisher.open({
      nc: planner,
      checkpointEvery: o.checkpointEvery ?? 5,
      signer: signs,
      deltaParts: o.deltaParts,
    });
    const targets = await TargetStore.open({ nc: planner, signer: signs });
    const received: BusWorld['received'] = new Events();
    const collector = await AckCollector.start({
      nc: planner,
      callbacks: {
        onAck: (v) => received.push({ kind: 'ack', v }),
        onNack: (v) => received.push({ kind: 'nack', v }),
        onHeartbeat: (v) => received.push({ kind: 'hb', v }),
      },
    });
    closers.push(async () => collector.stop());
    const world: BusWorld = {
      server,
      planner,
      publisher,
      targets,
      received,
      signer,
      verifier,
      async startApplier(node, extra = {}) {
        const nc = await connectBus({
          servers: server.url,
          name: `applier-${node}`,
          node,
          auth: nodeCred(node),
          extra: { reconnectDelayHandler: () => 100 },
        });
        const dataplane = new WatchedDataplane();
        const events = new Events<SessionEvent>();
        const session = await ApplierSession.start({
          nc,
          node,
          dataplane,
          heartbeatMs: 0,
          retryMs: 200,
          onEvent: (e) => events.push(e),
          verifier: o.unsigned ? undefined : verifier,
          ...extra,
        });
        closers.push(async () => {
          await session.stop();
          await nc.close();
        });
        return { session, dataplane, nc, events };
      },
      async close() {
        for (const c of closers.reverse()) await c().catch(() => {});
        await server.stop();
      },
    };
    return world;
  } catch (e) {
    for (const c of closers.reverse()) await c().catch(() => {});
    await server.stop();
    throw e;
  }
}
