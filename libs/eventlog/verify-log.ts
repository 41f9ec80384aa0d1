import { HASH_MISMATCH, readCheckpointObjects } from './checkpoints.ts';
import { objectBeforeParity } from './pre-parity-reading.ts';
import { readingRevisionOf, type KubeObject } from '../model/index.ts';
import { ClusterState } from '../planner/index.ts';
import type { EventLog } from './event-log.ts';
import { replayVersion } from './replay.ts';
import { CHAIN_NAMES, CHAINS, chainHash, linkFields, type ChainName } from './row-chain.ts';
import { databaseOf } from './database-handle.ts';

export interface VerifyProblem {
  /** Table (a chain name, 'checkpoints' or 'replay'), or STORAGE: the file's pages themselves. */
  readonly table: string;
  /** The first bad row's id (seq, version, revision, id). */
  readonly row: number;
  readonly problem: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  /** The first problem of each table, in table order. */
  readonly problems: readonly VerifyProblem[];
  readonly rowsChecked: Readonly<Record<string, number>>;
}

/** VerifyProblem.table of damage SQLite's own check finds in the file (its row: 0, no row). */
export const STORAGE = 'storage';

/**
 * SQLite's own check of the file's pages: `quick_check` (every b-tree page and record is
 * well-formed), with `deep` `integrity_check` (also every index agrees with its table). The chains
 * below read only the tables' rows, so a damaged index page (a disk's bad sector, a torn copy)
 * passed them, and `db verify` said ok of a file `db backup` then refused as malformed.
 */
function storageProblem(log: EventLog, deep: boolean): VerifyProblem | undefined {
  const check = deep ? 'integrity_check' : 'quick_check';
  let found: string[];
  try {
    const rows = databaseOf(log).pragma(`${check}(20)`) as Record<string, unknown>[];
    // one line each: SQLite heads a report with "*** in database main ***" and a line break
    found = rows.map((r) =>
      String(Object.values(r)[0])
        .replace(/^\*\*\* in database \w+ \*\*\*\s*/, '')
        .replace(/\s*\n\s*/g, '; '),
    );
  } catch (e) {
    found = [(e as Error).message];
  }
  if (found.length === 1 && found[0] === 'ok') return undefined;
  const more = found.length > 1 ? ` (and ${found.length - 1} more${found.length >= 20 ? ' at least' : ''})` : '';
  return {
    table: STORAGE,
    row: 0,
    problem: `SQLite's ${check}: ${found[0]}${more}: the file is damaged; restore it from a backup (docs/eventlog.md)`,
  };
}

/**
 * Checks the file's pages first (SQLite's own check: a damaged file is reported as that alone,
 * its rows unread), then every hash chain from its anchor to its recorded head: a row edited (its hash no longer
 * matches), deleted (a gap in the ids, or a head past the last row) or inserted (rows past the
 * head, or a link that does not follow) is named by table and id. Checkpoints are checked against
 * their own hash and, with `deep`, rebuilt and compared with their data hash; `deep` also replays
 * every version and compares it with the hash recorded for it.
 */
export function verifyLog(log: EventLog, opts: { deep?: boolean } = {}): VerifyReport {
  const problems: VerifyProblem[] = [];
  const rowsChecked: Record<string, number> = {};
  const damaged = storageProblem(log, opts.deep === true);
  if (damaged) return { ok: false, problems: [damaged], rowsChecked };
  for (const chain of CHAIN_NAMES) {
    const { problem, rows } = verifyChain(log, chain);
    rowsChecked[chain] = rows;
    if (problem) problems.push(problem);
  }
  let cps = 0;
  const db = databaseOf(log);
  const seqs = db.prepare('SELECT seq FROM checkpoints ORDER BY seq').pluck().all() as number[];
  const getRow = db.prepare(
    'SELECT seq, data_hash, objects, objects_hash, rejections, pieces, reading_revision FROM checkpoints WHERE seq = ?',
  );
  for (const seq of seqs) {
    const r = getRow.get(seq) as Parameters<typeof readCheckpointObjects>[1] & {
      data_hash: string;
      reading_revision: number | null;
    };
    cps++;
    // one text or pieces (checkpoints.ts); parsed only when rebuilt
    const read = readCheckpointObjects(db, r, { parse: opts.deep === true });
    if ('problem' in read) {
      const problem = read.problem === HASH_MISMATCH ? 'objects do not match their hash (edited)' : read.problem;
      problems.push({ table: 'checkpoints', row: r.seq, problem });
      break;
    }
    const revision = readingRevisionOf(r.reading_revision, `checkpoint at seq ${r.seq}`);
    // a revision-1 checkpoint of a release before the parity readings: as that release read it
    const rebuildsTo = (objects: readonly KubeObject[]) => ClusterState.fromObjects(objects, revision).hash();
    if (
      opts.deep &&
      rebuildsTo(read.objects) !== r.data_hash &&
      (revision !== 1 || rebuildsTo(read.objects.map(objectBeforeParity)) !== r.data_hash)
    ) {
      problems.push({ table: 'checkpoints', row: r.seq, problem: 'objects do not rebuild to the recorded data hash' });
      break;
    }
  }
  rowsChecked.checkpoints = cps;
  if (opts.deep && problems.length === 0) {
    for (const v of log.versions()) {
      let got: string;
      try {
        got = replayVersion(log, v.version).hash;
      } catch (e) {
        if ((e as { code?: string }).code === 'COMPACTED') continue; // compacted away on purpose
        throw e;
      }
      if (got !== v.hash) {
        problems.push({ table: 'replay', row: v.version, problem: `replays to ${got}, recorded ${v.hash}` });
        break;
      }
    }
  }
  return { ok: problems.length === 0, problems, rowsChecked };
}

function verifyChain(log: EventLog, chain: ChainName): { problem: VerifyProblem | undefined; rows: number } {
  const { id, columns } = CHAINS[chain];
  const head = databaseOf(log)
    .prepare('SELECT anchor_id, anchor_hash, head_id, head_hash FROM chain_heads WHERE chain = ?')
    .get(chain) as { anchor_id: number; anchor_hash: string; head_id: number; head_hash: string } | undefined;
  if (!head) return { problem: { table: chain, row: 0, problem: 'chain head is missing' }, rows: 0 };
  let expected = head.anchor_id + 1;
  let prev = head.anchor_hash;
  let rows = 0;
  const bad = (row: number, problem: string) => ({ problem: { table: chain, row, problem }, rows });
  const stmt = databaseOf(log)
    .prepare(`SELECT ${columns.join(', ')}, row_hash FROM ${chain} ORDER BY ${id}`)
    .raw(true);
  for (const r of stmt.iterate() as Iterable<(string | number | null)[]>) {
    const rowId = r[0] as number;
    const stored = r[r.length - 1] as string;
    if (rowId <= head.anchor_id) return bad(rowId, `row at or before the chain anchor ${head.anchor_id} (inserted)`);
    if (rowId > head.head_id) return bad(rowId, `row past the recorded head ${head.head_id} (inserted)`);
    if (rowId !== expected) return bad(expected, `missing (next row is ${rowId}): deleted`);
    const h = chainHash(prev, linkFields(chain, r.slice(0, -1)));
    if (h !== stored)
      return bad(rowId, 'content does not match its chained hash (edited, or a row before it replaced)');
    prev = stored;
    expected++;
    rows++;
  }
  if (expected - 1 !== head.head_id)
    return bad(expected, `missing up to the recorded head ${head.head_id}: deleted at the end`);
  if (prev !== head.head_hash) return bad(head.head_id, 'last row does not match the recorded head hash');
  return { problem: undefined, rows };
}
