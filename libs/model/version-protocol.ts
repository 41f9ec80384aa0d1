import type { ClusterData, DataDelta, EntryHashes } from './cluster-data.ts';
import type { z } from 'zod';
import type {
  AckSchema,
  AckTimingsSchema,
  ConfigRevisionSchema,
  HealthVerdictSchema,
  HeartbeatSchema,
  NackSchema,
  NodeTargetSchema,
  ProbeReportSchema,
} from './wire-schemas.ts';

/**
 * The version/ack protocol, xDS style. Data versions are immutable, numbered from 1 without gaps,
 * and content-hashed; an applier ACKs by echoing the version and the hash of the node state it
 * programmed, or NACKs with the error and the last version it still runs.
 */
export interface DataVersionHeader {
  readonly version: number;
  readonly parent: number; // 0 for the first version
  /** Content hash of the cluster data at this version (see libs/planner/data-hash-tree.ts). */
  readonly hash: string;
  readonly reason: string; // e.g. "3 events", "pin to 12", "rollback to 7"
  readonly createdAt: string; // ISO-8601
}

/** A published version: either a full checkpoint or a delta against `parent`. */
export type VersionArtifact =
  | (DataVersionHeader & { readonly form: 'checkpoint'; readonly data: ClusterData })
  | (DataVersionHeader & {
      readonly form: 'delta';
      readonly delta: DataDelta;
      /** Optional on the wire (planners before it send none): see EntryHashes. */
      readonly entryHashes?: EntryHashes;
    });

/** A published config revision (type derived from its wire schema). */
export type ConfigRevision = Readonly<z.output<typeof ConfigRevisionSchema>>;

/** What a node should run. A cluster default plus per-node overrides during rollouts. */
export type NodeTarget = Readonly<z.output<typeof NodeTargetSchema>>;

export type AckTimings = Readonly<z.output<typeof AckTimingsSchema>>;

/** ACK: echoes the version and the hash of the node state programmed. */
export type Ack = Readonly<z.output<typeof AckSchema>>;

/** NACK: the error and the last version/config the node still runs. */
export type Nack = Readonly<z.output<typeof NackSchema>>;

export type AckOrNack = Ack | Nack;

export type Heartbeat = Readonly<z.output<typeof HeartbeatSchema>>;

/** A node's health verdict: state read back AND a data-path probe (see HealthVerdictSchema). */
export type HealthVerdict = Readonly<z.output<typeof HealthVerdictSchema>>;
export type HealthVerdictWord = HealthVerdict['verdict'];
export type ProbeReport = Readonly<z.output<typeof ProbeReportSchema>>;

/** How the planner sees a node. */
export type NodeStatusWord = 'SYNCED' | 'APPLYING' | 'STALE' | 'ERROR' | 'UNKNOWN';
