import { sql, type Kysely } from 'kysely';

/**
 * The reading revision each version and checkpoint was made under (libs/model/reading-revision.ts;
 * docs/versioning.md, "Reading revisions"): replay reads a version's events with its revision's
 * rules, and a fold at a revision starts only from a checkpoint of that revision (or, where the
 * events before it were compacted away, of an older one). NULL on rows written before this
 * migration: revision 1, the rules every earlier release read with.
 *
 * versions.reading_revision is chained as an optional tail (libs/eventlog/row-chain.ts, as
 * acks.received_at): a row whose value is NULL hashes, ships and imports exactly as before. A
 * checkpoint row ships it as a trailing cell when not NULL (libs/eventlog/log-rows.ts).
 */
const statements = [
  'ALTER TABLE versions ADD COLUMN reading_revision INTEGER',
  'ALTER TABLE checkpoints ADD COLUMN reading_revision INTEGER',
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping a value a version row's chained hash covers would leave that row unverifiable.
  const r = await sql<{ n: number }>`SELECT count(*) AS n FROM versions WHERE reading_revision IS NOT NULL`.execute(db);
  if ((r.rows[0]?.n ?? 0) > 0)
    throw new Error(
      '0008-reading-revision: versions rows carry reading_revision in their chained hash; cannot drop it',
    );
  await sql.raw('ALTER TABLE checkpoints DROP COLUMN reading_revision').execute(db);
  await sql.raw('ALTER TABLE versions DROP COLUMN reading_revision').execute(db);
}
