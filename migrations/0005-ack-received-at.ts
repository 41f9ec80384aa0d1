import { sql, type Kysely } from 'kysely';

/**
 * The planner's own time for each ACK/NACK row (review 2, R3). `acks.at` is the applier's clock,
 * so `audit node --at` answered on a time axis the node controls; `received_at` is stamped by the
 * planner that records the row (monotonic along the acks chain, like versions' created_at) and
 * is what `--at` and "the latest ACK" use. NULL on rows written before this migration: they are
 * read on their `at`, as before.
 *
 * The column is chained as an optional tail (libs/eventlog/row-chain.ts): a row whose
 * received_at is NULL hashes, ships and imports exactly as before, so old rows still verify and a
 * replica of an older release still takes them. A row that carries it ships one cell more, which
 * an older release refuses (docs/eventlog.md, "Audit": mixed releases).
 */
const statements = [
  `ALTER TABLE acks ADD COLUMN received_at TEXT`,
  // "the node's last ACK at or before T" walks a node's rows back from its newest, in receive order
  `CREATE INDEX acks_by_node_id ON acks (node, type, id)`,
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Dropping a stamp a row's chained hash covers would leave that row unverifiable.
  const r = await sql<{ n: number }>`SELECT count(*) AS n FROM acks WHERE received_at IS NOT NULL`.execute(db);
  if ((r.rows[0]?.n ?? 0) > 0)
    throw new Error('0005-ack-received-at: acks rows carry received_at in their chained hash; cannot drop it');
  await sql.raw('DROP INDEX IF EXISTS acks_by_node_id').execute(db);
  await sql.raw('ALTER TABLE acks DROP COLUMN received_at').execute(db);
}
