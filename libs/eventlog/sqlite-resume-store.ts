import type Database from 'better-sqlite3';
import type { KubeKind } from '../model/index.ts';

/**
 * The informer's resume points (kind → resourceVersion) in the event log, so a restarted planner
 * resumes its watches where the log ends. Structurally the kube informer's ResumeStore.
 * The informer saves only after the sink accepted the events, i.e. after they were appended.
 */
export class SqliteResumeStore {
  private readonly get: Database.Statement;
  private readonly put: Database.Statement;

  constructor(db: Database.Database, private readonly now: () => Date = () => new Date()) {
    this.get = db.prepare('SELECT resource_version AS rv FROM resume_points WHERE kind = ?');
    this.put = db.prepare(`INSERT INTO resume_points (kind, resource_version, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (kind) DO UPDATE SET resource_version = excluded.resource_version, updated_at = excluded.updated_at`);
  }

  load(kind: KubeKind): string | undefined {
    return (this.get.get(kind) as { rv: string } | undefined)?.rv;
  }

  save(kind: KubeKind, rv: string): void {
    this.put.run(kind, rv, this.now().toISOString());
  }
}
