import { readingRevisionOf, type DataVersionHeader, type ReadingRevision } from '../model/index.ts';

/** A data version as the log records it: the protocol header plus where its content comes from. */
export interface VersionRecord extends DataVersionHeader {
  /** Event seq range this version covers: (previous version's seqTo, seqTo]. */
  readonly seqFrom: number;
  readonly seqTo: number;
  /** Pins and rollbacks: the version whose content this one repeats. */
  readonly contentOf: number | undefined;
  /** The reading revision its content was read with (its content source's, for a pin: replay.ts). */
  readonly readingRevision: ReadingRevision;
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
  /** NULL on rows older than migration 0008: revision 1. */
  reading_revision: number | null;
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
    readingRevision: readingRevisionOf(r.reading_revision, `version ${r.version}`),
  };
}

/** How a row (version or checkpoint) stores a reading revision: 1 as NULL, the value of rows older than migration 0008. */
export const readingRevisionColumn = (r: ReadingRevision): number | null => (r === 1 ? null : r);
