import type { ClusterData, DataDelta } from './cluster-data.ts';
import type { ProxyConfig } from './proxy-config.ts';

/**
 * The version/ack protocol, xDS style. Data versions are immutable, numbered from 1 without gaps,
 * and content-hashed; an applier ACKs by echoing the version and the hash of the node state it
 * programmed, or NACKs with the error and the last version it still runs.
 */
export interface DataVersionHeader {
  readonly version: number;
  readonly parent: number; // 0 for the first version
  /** Content hash of the cluster data at this version (see libs/planner/data-hash.ts). */
  readonly hash: string;
  readonly reason: string; // e.g. "3 events", "pin to 12", "rollback to 7"
  readonly createdAt: string; // ISO-8601
}

/** A published version: either a full checkpoint or a delta against `parent`. */
export type VersionArtifact =
  | (DataVersionHeader & { readonly form: 'checkpoint'; readonly data: ClusterData })
  | (DataVersionHeader & { readonly form: 'delta'; readonly delta: DataDelta });

export interface ConfigRevision {
  readonly revision: number;
  readonly config: ProxyConfig;
  readonly hash: string;
  readonly reason: string;
  readonly createdAt: string;
}

/** What a node should run. A cluster default plus per-node overrides during rollouts. */
export interface NodeTarget {
  readonly version: number;
  readonly configRevision: number;
}

export interface AckTimings {
  readonly fetchMs: number;
  readonly renderMs: number;
  readonly applyMs: number;
}

export interface Ack {
  readonly type: 'ACK';
  readonly node: string;
  readonly version: number;
  readonly configRevision: number;
  readonly dataHash: string;
  /** Hash of the node state programmed (contentHash of NodeState). */
  readonly nodeStateHash: string;
  /** The mode actually running; differs from the config when `--mode auto` fell back. */
  readonly mode: string;
  readonly kernelWrites: number;
  readonly timings: AckTimings;
  readonly at: string;
}

export interface Nack {
  readonly type: 'NACK';
  readonly node: string;
  readonly version: number;
  readonly configRevision: number;
  readonly error: string;
  readonly lastGoodVersion: number;
  readonly lastGoodConfigRevision: number;
  readonly at: string;
}

export type AckOrNack = Ack | Nack;

export interface Heartbeat {
  readonly node: string;
  readonly appliedVersion: number;
  readonly appliedConfigRevision: number;
  readonly mode: string;
  readonly healthy: boolean;
  readonly detail: string;
  readonly at: string;
}

/** How the planner sees a node. */
export type NodeStatusWord = 'SYNCED' | 'APPLYING' | 'STALE' | 'ERROR' | 'UNKNOWN';
