import type { EventLog } from './event-log.ts';
import { databaseOf } from './database-handle.ts';

/**
 * A version's anchor: the hash-chain links of its row in `versions` and of the last event it
 * includes, as text (`v<N>:<row hash> e<seq>:<row hash>`). The planner stamps it on every
 * published artifact, so the versions stream, outside the file, witnesses the log's chain: a
 * log whose tail was cut (rows deleted, chain_heads moved back) or rewritten no longer has
 * the rows the stream names.
 */
export function versionAnchor(log: EventLog, version: number): string {
  const v = databaseOf(log).prepare('SELECT row_hash AS h, seq_to AS s FROM versions WHERE version = ?').get(version) as
    | { h: string; s: number }
    | undefined;
  if (!v) return '';
  const e = databaseOf(log).prepare('SELECT row_hash AS h FROM events WHERE seq = ?').get(v.s) as
    | { h: string }
    | undefined;
  return `v${version}:${v.h} e${v.s}:${e?.h ?? '-'}`;
}

/** Why `log` does not hold what `anchor` says (undefined: it does). Compacted events and version rows are not checked. */
export function checkVersionAnchor(log: EventLog, anchor: string): string | undefined {
  const m = /^v(\d+):([0-9a-f]{64}) e(\d+):([0-9a-f]{64}|-)$/.exec(anchor);
  if (!m) return `unreadable anchor ${JSON.stringify(anchor)}`;
  const version = Number(m[1]);
  const seq = Number(m[3]);
  const last = (databaseOf(log).prepare('SELECT max(version) AS v FROM versions').get() as { v: number | null }).v ?? 0;
  if (last < version)
    return `the log ends at version ${last} but version ${version} was published from it: its tail was cut`;
  const v = databaseOf(log).prepare('SELECT row_hash AS h, seq_to AS s FROM versions WHERE version = ?').get(version) as
    | { h: string; s: number }
    | undefined;
  if (!v) {
    // retention removed the row: the chain's anchor still holds the last removed row's hash
    const a = databaseOf(log)
      .prepare(`SELECT anchor_id AS id, anchor_hash AS h FROM chain_heads WHERE chain = 'versions'`)
      .get() as {
      id: number;
      h: string;
    };
    if (version < a.id) return undefined; // compacted: not checked, as compacted events are not
    if (version === a.id)
      return a.h === m[2] ? undefined : `versions row ${version} is not the one published (the log was rewritten)`;
  }
  if (!v || v.h !== m[2]) return `versions row ${version} is not the one published (the log was rewritten)`;
  if (v.s !== seq) return `versions row ${version} names event ${v.s}, published ${seq}`;
  const head = (
    databaseOf(log).prepare(`SELECT head_id AS id FROM chain_heads WHERE chain = 'events'`).get() as { id: number }
  ).id;
  if (head < seq)
    return `the log's events end at ${head} but version ${version} included event ${seq}: its tail was cut`;
  const e = databaseOf(log).prepare('SELECT row_hash AS h FROM events WHERE seq = ?').get(seq) as
    | { h: string }
    | undefined;
  if (e && m[4] !== '-' && e.h !== m[4]) return `events row ${seq} is not the one published (the log was rewritten)`;
  return undefined;
}
