import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';

/**
 * `--replicas N` refused: more replicas than the NATS cluster has servers (or JetStream cannot
 * place them). The CLI turns it into a usage error (exit 2) naming the flag.
 */
export class ReplicasRefused extends Error {}

/**
 * The cluster as the connected server describes it in INFO: a clustered server names its cluster
 * and lists every member's client URL (itself included) in connect_urls; a lone server has no
 * cluster. Used to word a refusal (members that are down are not listed).
 */
export function clusterOf(nc: NatsConnection): { servers: number; name: string | undefined } {
  const info = nc.info as { cluster?: string; connect_urls?: string[] } | undefined;
  if (!info?.cluster) return { servers: 1, name: undefined };
  return { servers: Math.max(1, new Set(info.connect_urls ?? []).size), name: info.cluster };
}

/**
 * Checks the flag's value. Whether the cluster can hold that many copies is JetStream's answer when
 * a stream or bucket is made or resized (asRefusal): INFO's member list shrinks while a server is
 * down, and a planner must start then too, against streams that already have their replicas.
 * Only a server with no cluster at all is refused up front (refuseUnclustered).
 */
export function checkReplicas(replicas: number): void {
  if (!Number.isSafeInteger(replicas) || replicas < 1)
    throw new ReplicasRefused(`--replicas ${replicas}: must be a whole number of at least 1`);
}

function refusal(replicas: number, c: { servers: number; name: string | undefined }): string {
  return c.name
    ? `--replicas ${replicas}: larger than the NATS cluster ${c.name} (${c.servers} server${c.servers === 1 ? '' : 's'})`
    : `--replicas ${replicas}: the NATS server is not clustered (1 server); use --replicas 1 or a cluster of at least ${replicas}`;
}

/**
 * More than one copy on a server that is not clustered (INFO names no cluster), refused before a
 * stream is made or resized: a lone nats-server 2.9 refuses to create a stream with 3 replicas but
 * accepts an update of an existing one to 3 (review5 F3), so JetStream's answer alone let a
 * planner with --replicas 3 start on a lone server whose streams an earlier planner had made.
 */
export function refuseUnclustered(nc: NatsConnection, replicas: number): void {
  const c = clusterOf(nc);
  if (replicas > 1 && !c.name) throw new ReplicasRefused(refusal(replicas, c));
}

/**
 * Makes `stream` (created by the caller or by the KV client) hold `replicas` copies: an existing
 * stream made with another count is updated (JetStream adds or removes peers in place). JetStream's
 * own refusals (no suitable peers, not clustered) become ReplicasRefused.
 */
export async function ensureStreamReplicas(
  nc: NatsConnection,
  jsm: JetStreamManager,
  stream: string,
  replicas: number,
): Promise<void> {
  refuseUnclustered(nc, replicas);
  const info = await jsm.streams.info(stream);
  if ((info.config.num_replicas || 1) === replicas) return;
  try {
    await jsm.streams.update(stream, { num_replicas: replicas });
  } catch (e) {
    throw asRefusal(nc, replicas, e);
  }
}

/** JetStream's placement refusals, as ReplicasRefused naming the flag; anything else unchanged. */
export function asRefusal(nc: NatsConnection, replicas: number, e: unknown): unknown {
  // 10005: no suitable peers for placement; 10023: insufficient resources; 10074: not clustered
  if (e instanceof JetStreamApiError && [10005, 10023, 10074].includes(e.code)) {
    const c = clusterOf(nc);
    if (replicas > c.servers || !c.name)
      return new ReplicasRefused(`${refusal(replicas, c)} (JetStream: ${e.message})`);
    return new Error(
      `JetStream cannot place ${replicas} replicas in cluster ${c.name} now (${c.servers} servers known; one down?): ${e.message}`,
      { cause: e },
    );
  }
  return e;
}
