import type Database from 'better-sqlite3';
import type { KubeKind } from '../model/index.ts';

/**
 * The informer's resume points (kind → resourceVersion) in the event log, so a restarted planner
 * resumes its watches where the log ends. Structurally the kube informer's ResumeStore.
 *
 * The informer may save after every event; a durable write each time would cost one fsync per
 * event. So saves are buffered and written inside the next event-append transaction (the
 * EventLog calls `writePending`), and only there: the informer saves once the planner *queued* an
 * event, so a save written alone (at close, after a failed append) could make a resume point durable
 * past an event that never was (review2 R6). Close, a crash or a truncation loses only saves made
 * after the last append: the informer then resumes from an older resourceVersion and sees some
 * events again, which re-logs them but cannot skip any.
 */
export class SqliteResumeStore {
  private readonly get: Database.Statement;
  private readonly put: Database.Statement;
  private readonly pending = new Map<KubeKind, string>();

  constructor(
    private readonly db: Database.Database,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.get = db.prepare('SELECT resource_version AS rv FROM resume_points WHERE kind = ?');
    this.put = db.prepare(`INSERT INTO resume_points (kind, resource_version, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (kind) DO UPDATE SET resource_version = excluded.resource_version, updated_at = excluded.updated_at`);
  }

  load(kind: KubeKind): string | undefined {
    return this.pending.get(kind) ?? (this.get.get(kind) as { rv: string } | undefined)?.rv;
  }

  save(kind: KubeKind, rv: string): void {
    this.pending.set(kind, rv);
  }

  /** Writes buffered saves; call inside an open transaction (no commit of its own). */
  writePending(): void {
    if (this.pending.size === 0) return;
    const at = this.now().toISOString();
    for (const [kind, rv] of this.pending) this.put.run(kind, rv, at);
  }

  /** Call after the enclosing transaction committed. */
  committed(): void {
    this.pending.clear();
  }

  /** Forgets buffered saves (close, or the log's rows replaced: truncation, import). */
  discardPending(): void {
    this.pending.clear();
  }

  /**
   * Writes buffered saves durably now. Only for a caller that knows every event up to each saved
   * resourceVersion is in the log (tests that write both themselves); never on a planner's path.
   */
  flush(): void {
    if (this.pending.size === 0) return;
    this.db.transaction(() => this.writePending())();
    this.committed();
  }
}
