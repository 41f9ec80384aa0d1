import { sql, type Kysely } from 'kysely';

/**
 * Local bookkeeping of compaction (libs/eventlog/compact-log.ts), never replicated, not chained:
 * one row per run, by the planner's online retention or by `db compact`, updated in the same
 * transaction as each slice of rows it removes. So `db status` and the planner's /status say when
 * the log was last compacted and what it removed, and a run a crash cut short shows as one that
 * never finished (finished_at NULL) with what it had removed by then.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`CREATE TABLE compactions (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    by TEXT NOT NULL,
    before_version INTEGER NOT NULL,
    cut_seq INTEGER NOT NULL,
    acks_cut_id INTEGER NOT NULL,
    events_removed INTEGER NOT NULL DEFAULT 0,
    acks_removed INTEGER NOT NULL DEFAULT 0,
    checkpoints_removed INTEGER NOT NULL DEFAULT 0,
    checkpoints_written INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    longest_step_ms REAL NOT NULL DEFAULT 0
  )`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('DROP TABLE IF EXISTS compactions').execute(db);
}
