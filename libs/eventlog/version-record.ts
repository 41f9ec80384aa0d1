import type { DataVersionHeader } from '../model/index.ts';

/** A data version as the log records it: the protocol header plus where its content comes from. */
export interface VersionRecord extends DataVersionHeader {
  /** Event seq range this version covers: (previous version's seqTo, seqTo]. */
  readonly seqFrom: number;
  readonly seqTo: number;
  /** Pins and rollbacks: the version whose content this one repeats. */
  readonly contentOf: number | undefined;
}

export interface VersionRow {
  version: number;
  parent: number;
  hash: string;
  reason: string;
  created_at: string;
  seq_from: number;
  seq_to: number;
  content_of: number | null;
  delta: string | null;
  row_hash: string;
}

export function rowToVersion(r: VersionRow): VersionRecord {
  return {
    version: r.version,
    parent: r.parent,
    hash: r.hash,
    reason: r.reason,
    createdAt: r.created_at,
    seqFrom: r.seq_from,
    seqTo: r.seq_to,
    contentOf: r.content_of ?? undefined,
  };
}
