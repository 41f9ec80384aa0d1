import { sql, type Kysely } from 'kysely';

/**
 * Local bookkeeping of the replicated log (libs/eventlog/replication*.ts), never replicated itself:
 * `replication_mark` is where in the group's log stream this file stands (one row), and
 * `replication_truncations` records every time rows the group does not hold were dropped from this
 * file (a leader that committed locally and died or was fenced before its stream append), with the
 * dropped rows themselves, so nothing a replica once held disappears without a trace.
 */
const statements = [
  `CREATE TABLE replication_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    stream TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    term INTEGER NOT NULL,
    position TEXT NOT NULL,
    updated_at TEXT NOT NULL
  )`,
  `CREATE TABLE replication_truncations (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    stream TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    from_position TEXT NOT NULL,
    to_position TEXT NOT NULL,
    rows_dropped INTEGER NOT NULL,
    dropped TEXT NOT NULL
  )`,
];

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const s of statements) await sql.raw(s).execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('DROP TABLE IF EXISTS replication_truncations').execute(db);
  await sql.raw('DROP TABLE IF EXISTS replication_mark').execute(db);
}
