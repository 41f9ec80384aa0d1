import type Database from 'better-sqlite3';

/**
 * The event log's SQLite handle, reachable only from inside libs/eventlog (this file is not
 * exported by the index): everything outside goes through EventLog's methods, so the schema and
 * the query style (prepared statements) stay in one place.
 */
const handles = new WeakMap<object, Database.Database>();

export function registerDatabase(log: object, db: Database.Database): void {
  handles.set(log, db);
}

export function databaseOf(log: object): Database.Database {
  const db = handles.get(log);
  if (!db) throw new Error('not an open event log');
  return db;
}
