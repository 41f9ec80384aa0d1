import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import {
  AckOrNackSchema,
  HeartbeatSchema,
  MAX_REPORT_BYTES,
  parseWire,
  type Ack,
  type AckOrNack,
  type Heartbeat,
  type Nack,
} from '../model/index.ts';
import { ACK_WILDCARD, HEARTBEAT_WILDCARD, nodeToken } from './subjects.ts';

/** Optional hooks (go-control-plane style callbacks): the planner records and computes status. */
export interface AckCallbacks {
  onAck?(ack: Ack, receivedAt: number): void;
  onNack?(nack: Nack, receivedAt: number): void;
  onHeartbeat?(hb: Heartbeat, receivedAt: number): void;
  /** A message that is not a valid ack/heartbeat, or claims another node than its subject. */
  onInvalid?(subject: string, error: string): void;
}

/**
 * Planner side: subscribes to sb.ack.* and sb.hb.*. Node identity comes from the subject, which
 * server permissions bind to the node's credentials; a payload naming another node is rejected,
 * so one node cannot report for another even through its own subject.
 */
export class AckCollector {
  private readonly subs: Subscription[];

  private constructor(nc: NatsConnection, cb: AckCallbacks, now: () => number) {
    this.subs = [
      nc.subscribe(ACK_WILDCARD, {
        callback: (err, m) => {
          if (!err) handleReport(m.subject, m.data, 'ack', cb, now());
        },
      }),
      nc.subscribe(HEARTBEAT_WILDCARD, {
        callback: (err, m) => {
          if (!err) handleReport(m.subject, m.data, 'hb', cb, now());
        },
      }),
    ];
  }

  static async start(o: { nc: NatsConnection; callbacks: AckCallbacks; now?: () => number }): Promise<AckCollector> {
    const c = AckCollector.subscribe(o);
    try {
      await o.nc.flush(); // subscriptions are registered on the server when this resolves
    } catch (e) {
      c.stop(); // nobody gets the collector: its subscriptions must not outlive this failure
      throw e;
    }
    return c;
  }

  /**
   * Subscribes at once, whether or not NATS is there (the client sends the subscriptions when it
   * is, and again after every reconnect): the caller holds the collector, so it can always stop it.
   */
  static subscribe(o: { nc: NatsConnection; callbacks: AckCallbacks; now?: () => number }): AckCollector {
    return new AckCollector(o.nc, o.callbacks, o.now ?? (() => Date.now()));
  }

  stop(): void {
    for (const s of this.subs) s.unsubscribe();
  }
}

/** Exported for tests: what the collector does with one message (the subscriptions only route). */
export function handleReport(
  subject: string,
  data: Uint8Array,
  kind: 'ack' | 'hb',
  cb: AckCallbacks,
  at: number,
): void {
  // Refused before decoding or parsing: a node flooding its own subject with large reports cost
  // the planner's one thread a parse each, enough to starve the lease renewal (review3 N2). A
  // refused message changes nothing the planner knows of the node.
  if (data.length > MAX_REPORT_BYTES)
    return cb.onInvalid?.(subject, `${kind}: ${data.length} bytes, over the ${MAX_REPORT_BYTES}-byte limit`);
  const r = kind === 'ack' ? parseAckOrNack(data) : parseHeartbeat(data);
  if ('error' in r) return cb.onInvalid?.(subject, r.error);
  const tok = subject.split('.')[2];
  let claimed: string;
  try {
    claimed = nodeToken(r.value.node);
  } catch {
    return cb.onInvalid?.(subject, `invalid node name ${JSON.stringify(r.value.node)}`);
  }
  if (claimed !== tok) return cb.onInvalid?.(subject, `payload claims node ${r.value.node}`);
  if (kind === 'hb') return cb.onHeartbeat?.(r.value as Heartbeat, at);
  const a = r.value as AckOrNack;
  if (a.type === 'ACK') cb.onAck?.(a, at);
  else cb.onNack?.(a, at);
}

export function parseAckOrNack(data: Uint8Array): { value: AckOrNack } | { error: string } {
  return parseWire(AckOrNackSchema, data, 'ack');
}

export function parseHeartbeat(data: Uint8Array): { value: Heartbeat } | { error: string } {
  return parseWire(HeartbeatSchema, data, 'heartbeat');
}
