// A compaction run's record and its one-line description: a leaf without SQLite, so `ctl status`
// (which must load no heavy module: test/build/dist.test.ts) describes /status `retention` as
// `db status` does.

/** A run's record in the compactions table (migrations 0007, 0009, 0010). */
export interface CompactionRecord {
  readonly id: number;
  readonly startedAt: string;
  /** Undefined: the run is under way, or a crash or a refusal stopped it (its rows so far are removed). */
  readonly finishedAt?: string;
  /**
   * Set when a later run (this names who ran it) finished the record: its own run was stopped
   * after its last removal step, before marking it (migration 0009); finishedAt is then that later
   * run's time. Undefined: the run finished itself (or has not finished).
   */
  readonly finishedBy?: string;
  /**
   * Unfinished: when and why its run ended part way (a planner stopping, a floor that came during
   * it, a failed step, or, said by the next run, its process ended during it). What it left is
   * removed by later runs, each with a record of its own. Undefined on a finished record, on one
   * under way, and on one whose process ended and no planner ran since.
   */
  readonly stopped?: { readonly at: string; readonly why: string };
  /** Set by the running planner's /status on the record of its run in progress. */
  readonly underWay?: boolean;
  readonly by: string;
  readonly beforeVersion: number;
  readonly cutSeq: number;
  readonly acksCutId: number;
  readonly eventsRemoved: number;
  readonly acksRemoved: number;
  /** Version rows removed (its fourth phase); undefined on a record made before migration 0010. */
  readonly versionsRemoved?: number;
  readonly checkpointsRemoved: number;
  readonly checkpointsWritten: number;
  readonly steps: number;
  /** The longest of its transactions, in ms (what it held the writer, and the planner's thread, for). */
  readonly longestStepMs: number;
}

/** One line for a run (db status, the planner's log): when, by whom, what it removed, whether it finished. */
export function describeCompaction(r: CompactionRecord): string {
  const rows =
    r.versionsRemoved === undefined
      ? `${r.eventsRemoved} events (up to seq ${r.cutSeq}) and ${r.acksRemoved} ACK/NACK rows`
      : `${r.eventsRemoved} events (up to seq ${r.cutSeq}), ${r.acksRemoved} ACK/NACK rows and ${r.versionsRemoved} version rows`;
  const what = `${rows} removed, keeping versions from ${r.beforeVersion} on`;
  const how = `${r.steps} steps, the longest ${Math.round(r.longestStepMs * 10) / 10} ms`;
  const later = r.finishedBy ? `; stopped after its last removal, marked finished by a later ${r.finishedBy} run` : '';
  if (r.finishedAt) return `${r.finishedAt} by ${r.by}: ${what} (${how}${later})`;
  if (r.underWay) return `${r.startedAt} by ${r.by}, UNDER WAY: ${what} so far (${how})`;
  if (r.stopped)
    return `${r.startedAt} by ${r.by}, STOPPED part way at ${r.stopped.at} (${r.stopped.why}): ${what} so far (${how}); later runs remove the rest, each with its own record`;
  return `${r.startedAt} by ${r.by}, UNFINISHED (under way, or its process ended during it; the next planner run says which): ${what} so far (${how})`;
}
