import { sql, type Kysely } from 'kysely';

/**
 * The event log's first schema. Every append-only table carries `row_hash`, chained to the
 * previous row of the same table (see libs/eventlog/row-chain.ts); `chain_heads` remembers each
 * chain's last row (so truncation shows) and its anchor (the row before the first retained one,
 * after compaction). Payloads are JSON text.
 */
const statements = [
  `CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('ADDED','MODIFIED','DELETED')),
    origin TEXT NOT NULL CHECK (origin IN ('watch','relist','manifests')),
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    resource_version TEXT NOT NULL,
    service TEXT NOT NULL,
    object TEXT NOT NULL,
    row_hash TEXT NOT NULL
  )`,
  `CREATE INDEX events_by_service ON events (namespace, service, seq)`,
  `CREATE INDEX events_by_object ON events (kind, namespace, name, seq)`,
  `CREATE TABLE versions (
    version INTEGER PRIMARY KEY,
    parent INTEGER NOT NULL,
    hash TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    seq_from INTEGER NOT NULL,
    seq_to INTEGER NOT NULL,
    content_of INTEGER,
    delta TEXT,
    row_hash TEXT NOT NULL
  )`,
  `CREATE INDEX versions_by_time ON versions (created_at)`,
  `CREATE TABLE config_revisions (
    revision INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    config TEXT NOT NULL,
    row_hash TEXT NOT NULL
  )`,
  `CREATE TABLE acks (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL CHECK (type IN ('ACK','NACK')),
    node TEXT NOT NULL,
    version INTEGER NOT NULL,
    config_revision INTEGER NOT NULL,
    at TEXT NOT NULL,
    body TEXT NOT NULL,
    row_hash TEXT NOT NULL
  )`,
  `CREATE INDEX acks_by_node ON acks (node, at, id)`,
  `CREATE INDEX acks_by_version ON acks (version)`,
  `CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    params TEXT NOT NULL,
    version INTEGER,
    at TEXT NOT NULL,
    row_hash TEXT NOT NULL
  )`,
  `CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    data_hash TEXT NOT NULL,
    object_count INTEGER NOT NULL,
    objects TEXT NOT NULL,
    objects_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
  )`,
  `CREATE TABLE chain_heads (
    chain TEXT PRIMARY KEY,
    anchor_id INTEGER NOT NULL,
    anchor_hash TEXT NOT NULL,
    head_id INTEGER NOT NULL,
    head_hash TEXT NOT NULL
  )`,
  `CREATE TABLE resume_points (
    kind TEXT PRIMARY KEY,
    resource_version TEXT NOT NULL,
    updated_at TEXT NOT NULL
  )`,
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
  const genesis = '0'.repeat(64);
  for (const chain of ['events', 'versions', 'config_revisions', 'acks', 'operations']) {
    await sql`INSERT INTO chain_heads (chain, anchor_id, anchor_hash, head_id, head_hash)
              VALUES (${chain}, 0, ${genesis}, 0, ${genesis})`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of [
    'resume_points',
    'chain_heads',
    'checkpoints',
    'operations',
    'acks',
    'config_revisions',
    'versions',
    'events',
  ]) {
    await sql.raw(`DROP TABLE IF EXISTS ${t}`).execute(db);
  }
}
