import { sql, type Kysely } from 'kysely';

/**
 * A checkpoint larger than one piece is stored as a sequence of bounded pieces, each a JSON array
 * of a run of its objects (libs/eventlog/checkpoints.ts): one TEXT of all objects is ~500 MB at
 * 10,000 services × 250 endpoints and past V8's longest string soon after, where writing or
 * reading it throws. `checkpoints.pieces` = 0 keeps the one-text form (every row written before
 * this migration, and every checkpoint that fits one piece); N > 0 means `objects` is '' and
 * N rows of `checkpoint_pieces` hold them. The trigger removes a checkpoint's pieces with it
 * (compaction, truncation after a lost replication append).
 */
const statements = [
  `ALTER TABLE checkpoints ADD COLUMN pieces INTEGER NOT NULL DEFAULT 0`,
  `CREATE TABLE checkpoint_pieces (
    seq INTEGER NOT NULL,
    piece INTEGER NOT NULL,
    objects TEXT NOT NULL,
    PRIMARY KEY (seq, piece)
  )`,
  `CREATE TRIGGER checkpoint_pieces_follow_delete AFTER DELETE ON checkpoints
    BEGIN DELETE FROM checkpoint_pieces WHERE seq = OLD.seq; END`,
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('DROP TRIGGER IF EXISTS checkpoint_pieces_follow_delete').execute(db);
  await sql.raw('DROP TABLE IF EXISTS checkpoint_pieces').execute(db);
  await sql.raw('ALTER TABLE checkpoints DROP COLUMN pieces').execute(db);
}
