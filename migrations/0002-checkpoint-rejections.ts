import { sql, type Kysely } from 'kysely';

/**
 * Checkpoints also keep the objects that were rejected (malformed) as of their seq, so a planner
 * restarting from a checkpoint knows every current rejection without reading the events before
 * it. Existing checkpoints get '[]': their hash stays valid (see libs/eventlog/checkpoints.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql.raw(`ALTER TABLE checkpoints ADD COLUMN rejections TEXT NOT NULL DEFAULT '[]'`).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('ALTER TABLE checkpoints DROP COLUMN rejections').execute(db);
}
