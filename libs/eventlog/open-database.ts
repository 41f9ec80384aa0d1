import fs from 'node:fs';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import { MIGRATIONS, migrationProvider } from '../../migrations/index.ts';
import { EventLogError, translateSqliteError } from './event-log-error.ts';
import { closeHeaderReader, headerDamage, openHeaderReader } from './file-health.ts';

type Db = Database.Database;

/** Marks a SQLite file as a Switchboard event log (PRAGMA application_id, "SWBD"). */
/**
 * The log schema this release writes: the number of migrations it knows. Each planner announces it
 * in its group member record, so a leader can name a member of another release (probe15 U10).
 */
export const LOG_SCHEMA_VERSION = Object.keys(MIGRATIONS).length;

export const APPLICATION_ID = 0x53574244;
const MIGRATION_TABLE = 'kysely_migration';

export interface OpenDatabaseOptions {
  readonly file: string;
  /** Create the file and run pending migrations (default true). False: the file must exist and be current. */
  readonly migrate?: boolean;
  /**
   * 'full' (default): every commit is fsynced before it returns, which the durability promise
   * needs. 'normal' skips the per-commit WAL fsync (a power cut may lose the last commits, never
   * corrupt): for tests and benches that do not test durability.
   */
  readonly sync?: 'full' | 'normal';
  /**
   * Open the file read-only (implies migrate false): nothing is written to it, not even the WAL
   * pragma's header change, so an audit of a backup leaves its bytes as they were and a file the
   * reader may read but not write can be read (review5 F4). A WAL-mode log needs its -shm file
   * (there while its planner runs, or after a clean close) or a writable directory.
   */
  readonly readOnly?: boolean;
}

export interface SchemaStatus {
  readonly applied: readonly string[];
  readonly pending: readonly string[];
  /** Number of applied migrations: the schema version. */
  readonly version: number;
}

/**
 * Opens an event log file: refuses corrupt files, foreign SQLite databases and schemas newer than
 * this code (with one clear line each), then runs pending migrations through kysely's Migrator,
 * and sets the pragmas durability depends on (WAL, synchronous=FULL: a commit is on disk when
 * it returns).
 */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<{
  db: Db;
  schema: SchemaStatus;
  migrated: readonly string[];
  /** A descriptor of the file for header checks, to close only after `db` (file-health.ts openHeaderReader). */
  headerFd: number | undefined;
}> {
  const migrate = !opts.readOnly && (opts.migrate ?? true);
  const file = opts.file;
  if (!migrate && !fs.existsSync(file)) throw new EventLogError('NOT_FOUND', `${file}: no such event log`);
  // An empty file is no log either; opening it would make it a SQLite file (the WAL pragma writes
  // a header), so a read-only tool would have changed what it was asked to read.
  if (!migrate && fs.statSync(file).size === 0)
    throw new EventLogError('NOT_A_DATABASE', `${file}: empty file, not an event log`);
  // Opened before SQLite's own and closed only after it (closing one drops the process's locks).
  let headerFd = fs.existsSync(file) ? openHeaderReader(file) : undefined;
  let db: Db;
  try {
    db = opts.readOnly ? new Database(file, { readonly: true, fileMustExist: true }) : new Database(file);
  } catch (e) {
    closeHeaderReader(headerFd);
    throw readOnlyWalHint(opts.readOnly, e, file) ?? translateSqliteError(e, file);
  }
  try {
    const schema = inspect(db, file);
    // A truncated file opens (its first page is there) and fails at the first read past the cut.
    // (An empty file is a new log here: the WAL pragma below writes its first page.)
    const damage = headerFd !== undefined && fs.fstatSync(headerFd).size > 0 ? headerDamage(headerFd, file) : undefined;
    if (damage !== undefined) throw new EventLogError('NOT_A_DATABASE', `${file}: not a usable event log: ${damage}`);
    // WAL before the migrations: a fresh file's ~30 migration statements then cost one WAL fsync
    // per commit instead of a rollback journal's several (116 fsyncs per fresh file before).
    if (!opts.readOnly) {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${opts.sync === 'normal' ? 'NORMAL' : 'FULL'}`);
    }
    if (schema.pending.length > 0) {
      if (!migrate) {
        throw new EventLogError(
          'INVALID',
          `${file}: schema needs migrations ${schema.pending.join(', ')}; run \`switchboard db migrate --db ${file}\``,
        );
      }
      await runMigrations(db, file);
    }
    db.pragma('busy_timeout = 5000');
    // What this open migrated in a file that had a schema already (an upgrade), for one line.
    // a new file exists now (opening a descriptor takes no lock away; only closing one does)
    headerFd ??= openHeaderReader(file);
    return {
      db,
      schema: inspect(db, file),
      migrated: schema.applied.length > 0 ? schema.pending : [],
      headerFd,
    };
  } catch (e) {
    db.close();
    closeHeaderReader(headerFd);
    throw readOnlyWalHint(opts.readOnly, e, file) ?? translateSqliteError(e, file);
  }
}

/**
 * A read-only open of a WAL-mode log without its -shm file, where this user may not create one
 * (another user's directory, read-only media): SQLite answers "attempt to write a readonly
 * database" (SQLITE_READONLY_DIRECTORY) or "unable to open database file", which read as if the
 * read-only tool had tried to write. Said as what it is, with what to do.
 */
function readOnlyWalHint(readOnly: boolean | undefined, e: unknown, file: string): EventLogError | undefined {
  const code = (e as { code?: unknown })?.code;
  if (!readOnly || (code !== 'SQLITE_READONLY_DIRECTORY' && code !== 'SQLITE_CANTOPEN')) return undefined;
  if (fs.existsSync(`${file}-shm`)) return undefined;
  return new EventLogError(
    'IO',
    `${file}: a WAL-mode event log is read with its -shm file beside it, which SQLite must create here and cannot (the directory is read-only or another user's; ${String(code)}): read a copy in a directory you may write, or one \`switchboard db backup\` made`,
    { cause: e },
  );
}

function inspect(db: Db, file: string): SchemaStatus {
  // The first read of the header is where a corrupt or non-SQLite file shows.
  const tables = (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as {
      name: string;
    }[]
  ).map((r) => r.name);
  const appId = db.pragma('application_id', { simple: true }) as number;
  const known = Object.keys(MIGRATIONS).sort();
  if (appId !== APPLICATION_ID) {
    if (appId !== 0 || tables.length > 0) {
      const what = appId !== 0 ? `application_id ${appId}` : `tables ${tables.slice(0, 5).join(', ')}`;
      throw new EventLogError(
        'FOREIGN_DATABASE',
        `${file}: not a switchboard event log (foreign SQLite database: ${what})`,
      );
    }
    return { applied: [], pending: known, version: 0 };
  }
  const applied = tables.includes(MIGRATION_TABLE)
    ? (db.prepare(`SELECT name FROM ${MIGRATION_TABLE} ORDER BY name`).all() as { name: string }[]).map((r) => r.name)
    : [];
  const unknown = applied.filter((n) => !(n in MIGRATIONS));
  if (unknown.length > 0) {
    throw new EventLogError(
      'SCHEMA_TOO_NEW',
      `${file}: schema is newer than this switchboard (unknown migrations ${unknown.join(', ')}); upgrade switchboard`,
    );
  }
  return { applied, pending: known.filter((n) => !applied.includes(n)), version: applied.length };
}

/**
 * Runs every pending migration in ONE transaction: all of them or, after an error or a crash
 * anywhere in between, none (the file stays as it was and the next open runs them again). kysely
 * runs SQLite migrations without a transaction (its SQLite adapter declares no transactional DDL,
 * which SQLite has), so each statement committed on its own: a crash between two left a
 * half-made schema, and a fresh file paid one WAL fsync per statement (~30, before the planner
 * could append its first event).
 */
async function runMigrations(db: Db, file: string): Promise<void> {
  // No destroy(): kysely's driver would close the shared better-sqlite3 handle.
  const k = new Kysely<unknown>({ dialect: new SqliteDialect({ database: db }) });
  db.exec('BEGIN IMMEDIATE');
  let outcome: Awaited<ReturnType<Migrator['migrateToLatest']>>;
  try {
    db.pragma(`application_id = ${APPLICATION_ID}`);
    outcome = await new Migrator({
      db: k,
      provider: migrationProvider,
      migrationTableName: MIGRATION_TABLE,
    }).migrateToLatest();
    if (outcome.error) db.exec('ROLLBACK');
    else db.exec('COMMIT');
  } catch (e) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw e;
  }
  const { error, results } = outcome;
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? '?';
    const t = translateSqliteError(error, `${file}: migration ${failed} failed (none applied)`);
    throw t instanceof EventLogError
      ? t
      : new EventLogError(
          'INVALID',
          `${file}: migration ${failed} failed (none applied): ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
  }
}
