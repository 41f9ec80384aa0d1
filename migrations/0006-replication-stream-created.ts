import { sql, type Kysely } from 'kysely';

/**
 * The replication mark also names which log stream its sequence counts in: the stream's creation
 * time. A stream made again after NATS lost its whole store has the same name and counts from 1
 * again, so a planner restarted after such a loss must not read on from its old sequence. Local
 * bookkeeping (never replicated, not chained); NULL in marks written before this migration, which
 * are then trusted as before.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE replication_mark ADD COLUMN stream_created TEXT').execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE replication_mark DROP COLUMN stream_created').execute(db);
}
