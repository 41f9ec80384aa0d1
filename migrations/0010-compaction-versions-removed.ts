import { sql, type Kysely } from 'kysely';

/**
 * The version rows a compaction run removed (its fourth phase, libs/eventlog/compact-log.ts; probe9
 * V1), kept beside events_removed and acks_removed and updated in the same transaction as each
 * slice. NULL on rows written before this migration: not counted then (a run of that release may
 * have removed some), which `db status` leaves unsaid rather than call 0.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE compactions ADD COLUMN versions_removed INTEGER').execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE compactions DROP COLUMN versions_removed').execute(db);
}
