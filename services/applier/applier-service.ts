import type { NatsConnection } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import { ApplierSession, connectBus, type BusAuth, type SessionEvent } from '../../libs/bus/index.ts';
import { createDataplane, DEFAULT_STATE_DIR, type DataplaneChoice } from '../../libs/dataplane/create-dataplane.ts';
import type { Dataplane } from '../../libs/dataplane/dataplane.ts';
import { ApplierMetrics } from './applier-metrics.ts';
import { AppliedStateFile } from './applied-state-file.ts';
import { startHttpEndpoint } from './http-endpoint.ts';

export interface ApplierServiceOptions {
  readonly node: string;
  readonly nats: string | string[];
  readonly mode: DataplaneChoice;
  readonly http?: string;
  readonly auth?: BusAuth;
  readonly stateDir?: string;
  readonly heartbeatMs?: number;
  readonly logger?: Logger;
  /** Tests and benches pass their own dataplane. */
  readonly dataplane?: Dataplane;
}

export interface ApplierService {
  readonly session: ApplierSession;
  readonly dataplane: Dataplane;
  readonly nc: NatsConnection;
  readonly httpPort: number | undefined;
  /** Graceful stop: session, HTTP, NATS, dataplane handles. The kernel state stays programmed. */
  stop(): Promise<void>;
}

/**
 * The long-running applier: bus session + rendering + dataplane, with /healthz and /metrics.
 * Wiring only; the protocol lives in libs/bus/applier-session.ts.
 */
export async function startApplierService(o: ApplierServiceOptions): Promise<ApplierService> {
  const log = o.logger ?? pino({ name: 'switchboard-applier', base: { node: o.node } });
  const stateDir = o.stateDir ?? DEFAULT_STATE_DIR;
  const metrics = new ApplierMetrics();
  const dataplane = o.dataplane ?? await createDataplane({
    mode: o.mode, node: o.node, stateDir, registry: metrics.registry, log: (m) => log.info(m),
  });
  const persisted = o.mode === 'dry-run' && !o.stateDir ? undefined : new AppliedStateFile(stateDir, o.node);
  const resumeFrom = persisted?.read();
  if (resumeFrom) log.info({ resumeFrom }, 'resuming: will not reprogram an unchanged node state');
  const nc = await connectBus({ servers: o.nats, name: `switchboard-applier-${o.node}`, node: o.node, auth: o.auth });
  log.info({ server: nc.getServer(), mode: dataplane.mode }, 'connected to NATS');
  const onEvent = (e: SessionEvent) => {
    metrics.observe(e);
    switch (e.type) {
      case 'target': log.info({ target: e.target }, 'target'); break;
      case 'ack':
        log.info({ version: e.ack.version, configRevision: e.ack.configRevision, path: e.path, bytes: e.bytes, skipped: e.skipped, kernelWrites: e.ack.kernelWrites, timings: e.ack.timings }, 'applied');
        try {
          persisted?.write({ version: e.ack.version, configRevision: e.ack.configRevision, dataHash: e.ack.dataHash, nodeStateHash: e.ack.nodeStateHash });
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'could not persist applied state');
        }
        break;
      case 'nack': log.warn({ version: e.nack.version, error: e.nack.error, lastGoodVersion: e.nack.lastGoodVersion }, 'NACK'); break;
      case 'error': log.warn({ error: e.error }, 'bus error'); break;
      case 'connection': if (e.status !== 'pingTimer') log.info({ status: e.status }, 'nats connection'); break;
    }
  };
  let session: ApplierSession;
  try {
    session = await ApplierSession.start({ nc, node: o.node, dataplane, heartbeatMs: o.heartbeatMs ?? 5000, resumeFrom, onEvent });
  } catch (e) {
    await nc.close();
    await dataplane.close();
    throw e;
  }
  const http = o.http ? await startHttpEndpoint({
    address: o.http, registry: metrics.registry,
    health: () => {
      const s = session.status();
      return { healthy: s.lastError === '', node: o.node, mode: dataplane.mode, connected: !nc.isClosed(), applied: s.applied, target: s.target, lastError: s.lastError };
    },
  }) : undefined;
  if (http) log.info({ port: http.port }, 'http listening');
  return {
    session, dataplane, nc, httpPort: http?.port,
    async stop() {
      await session.stop();
      await http?.close();
      await nc.drain().catch(() => nc.close());
      await dataplane.close(); // closes handles only; never cleanup(): fail-static
      log.info('stopped; programmed state left in place');
    },
  };
}
