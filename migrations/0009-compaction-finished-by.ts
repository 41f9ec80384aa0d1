import { sql, type Kysely } from 'kysely';

/**
 * Who finished a compaction record another run left unfinished (libs/eventlog/compact-log.ts,
 * finishLeftRecord): a run killed after its last removal step but before its record was marked
 * finished leaves nothing to remove, so no later run continues it and, before this, the record
 * said UNFINISHED for good. The next online-retention run that finds nothing to remove now sets
 * finished_at (its own time) and names itself here, so an audit can tell such a record from one
 * whose run finished itself (NULL).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE compactions ADD COLUMN finished_by TEXT').execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE compactions DROP COLUMN finished_by').execute(db);
}
