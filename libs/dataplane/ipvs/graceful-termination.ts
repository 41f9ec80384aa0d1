import type { Protocol } from '../../model/index.ts';
import type { ObservedRealServer } from './observed-kernel.ts';

/**
 * Drain-then-delete for real servers that left the desired state (kube-proxy's
 * graceful_termination.go, as a pure state machine with the clock passed in):
 *  - TCP: weight 0 first, so no new connection picks it; delete once its active + inactive
 *    connections reach 0 (read back from the kernel's dest counters) or the deadline passes.
 *    Counters that were not read (`countersUnknown`) count as connections: it drains.
 *  - UDP/SCTP: no connection state to wait for; delete at once and clear conntrack so clients
 *    stop being NATed to the dead endpoint.
 * A real server that comes back while draining is simply desired again: the diff restores its
 * weight and the draining entry is dropped.
 */
export type RemovalAction =
  | { readonly action: 'set-weight-zero'; readonly since: number }
  | { readonly action: 'wait'; readonly since: number }
  | { readonly action: 'delete' }
  | { readonly action: 'delete-and-flush-conntrack' };

export interface RemovalInput {
  readonly protocol: Protocol;
  readonly observed: ObservedRealServer;
  /** When draining started (ms), or undefined when this is the first time it is unwanted. */
  readonly drainingSince: number | undefined;
  readonly now: number;
  readonly drainTimeoutMs: number;
}

export function decideRemoval(i: RemovalInput): RemovalAction {
  if (i.protocol !== 'TCP') return { action: 'delete-and-flush-conntrack' };
  const since = i.drainingSince ?? i.now;
  if (i.now - since >= i.drainTimeoutMs) return { action: 'delete' };
  // Counters not read (a large service's change, planned from the model): it may have
  // connections, so it drains, and the next read of its counters decides (the full cycle's).
  if (!i.observed.countersUnknown && i.observed.activeConns + i.observed.inactiveConns === 0)
    return { action: 'delete' };
  // Weight may have been raised behind our back (drift): lower it again.
  return i.observed.weight !== 0 ? { action: 'set-weight-zero', since } : { action: 'wait', since };
}

/** Key of a draining real server in the ownership record. */
export function drainingKey(vsKey: string, rsKey: string): string {
  return `${vsKey}>${rsKey}`;
}

/** A draining key's service key and real server key (drainingKey's parts). */
export function splitDrainingKey(key: string): { vsKey: string; rsKey: string } {
  const cut = key.indexOf('>');
  return cut < 0 ? { vsKey: key, rsKey: '' } : { vsKey: key.slice(0, cut), rsKey: key.slice(cut + 1) };
}

/** Default deadline after which a draining TCP real server is deleted even with connections. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5 * 60_000;
