import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import {
  checkServerUrls,
  connectBus,
  defaultSigningKeyFile,
  newestPublishedAnchor,
  readVerifierFile,
  type Verifier,
} from '../../../libs/bus/index.ts';
import {
  backupLog,
  checkVersionAnchor,
  compactLog,
  describeCompaction,
  EventLog,
  logGrowth,
  logStorage,
  replayableFrom,
  retentionStatus,
  STORAGE,
  verifyLog,
} from '../../../libs/eventlog/index.ts';
import { canonicalJson } from '../../../libs/model/index.ts';
import { UsageError } from '../cli-errors.ts';
import { refuseFlags } from '../flag-rules.ts';
import { requireCreatableFile, requireInputFile } from '../flag-values.ts';
import type { SetExit } from './index.ts';

interface DbOptions {
  db: string;
  beforeVersion?: string;
  deep?: boolean;
  json?: boolean;
  nats?: string;
  natsUser?: string;
  natsPassword?: string;
  plannerKey?: string;
}

const ACTIONS = ['migrate', 'status', 'verify', 'backup', 'compact'] as const;

/** `db migrate|status|verify|backup|compact --db FILE`: event log maintenance. */
export function registerDb(program: Command, setExit: SetExit): void {
  program
    .command('db')
    .description('event log maintenance: migrate | status | verify [--deep] | backup OUT | compact --before-version N')
    .argument('<action>', ACTIONS.join('|'))
    .argument('[out]', 'backup: the file to write')
    .requiredOption('--db <file>', 'event log (SQLite file)')
    .option('--before-version <n>', 'compact: remove events (and ACK/NACK rows) before this version')
    .option('--deep', 'verify: also rebuild every checkpoint and replay every version')
    .option('--json', 'machine-readable output')
    .option('--nats <url>', "verify: check the log's tail against the anchors carried by the published versions")
    .option('--nats-user <user>', 'NATS user (the observer or planner role)')
    .option('--nats-password <password>', 'NATS password (or SWITCHBOARD_NATS_PASSWORD)')
    .option(
      '--planner-key <file>',
      "verify --nats: trust only versions signed by this key (default: the log's FILE.signing-key.pem.pub when present)",
    )
    .action(async (action: string, out: string | undefined, o: DbOptions, cmd: Command) => {
      if (!(ACTIONS as readonly string[]).includes(action))
        throw new UsageError(`db: unknown action ${action} (one of ${ACTIONS.join(', ')})`);
      if (action === 'backup' && !out) throw new UsageError('db backup: missing OUT file');
      if (action !== 'backup' && out) throw new UsageError(`db ${action}: unexpected argument ${out}`);
      if (action !== 'compact') refuseFlags(cmd, ['--before-version'], `db ${action}`, 'it says where db compact cuts');
      if (action !== 'verify')
        refuseFlags(
          cmd,
          ['--deep', '--nats', '--nats-user', '--nats-password', '--planner-key'],
          `db ${action}`,
          'it is for db verify only',
        );
      else if (!o.nats)
        refuseFlags(
          cmd,
          ['--nats-user', '--nats-password', '--planner-key'],
          'db verify without --nats',
          "it is for checking the log's tail against NATS (add --nats URL)",
        );
      let servers: string[] | undefined;
      let verifier: Verifier | undefined;
      try {
        servers = o.nats ? checkServerUrls('--nats', o.nats) : undefined;
        const keyFile = o.plannerKey ?? `${defaultSigningKeyFile(o.db)}.pub`;
        verifier = o.nats && (o.plannerKey || existsSync(keyFile)) ? readVerifierFile(keyFile) : undefined;
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      let before: number | undefined;
      if (action === 'compact') {
        if (o.beforeVersion === undefined)
          throw new UsageError('db compact: --before-version N (a version number) is required');
        before = /^[0-9]+$/.test(o.beforeVersion) ? Number(o.beforeVersion) : Number.NaN;
        if (!Number.isSafeInteger(before) || before < 1)
          throw new UsageError(
            `db compact: --before-version must be a positive version number, got ${JSON.stringify(o.beforeVersion)}`,
          );
      }
      // every action but migrate (which makes the file) reads a log that must be there; migrate and
      // compact write it and backup writes OUT: where they write must take files (one line, exit 2,
      // before the log's lock file is made beside it)
      if (action !== 'migrate') requireInputFile('--db', o.db);
      if (action === 'migrate' || action === 'compact') requireCreatableFile('--db', o.db);
      if (action === 'backup') requireCreatableFile('db backup OUT', out!);
      // compact and migrate write the log: they take its writer lock, so a running planner's file is
      // refused (exit 1, naming the holder) rather than compacted or migrated under it (review2 L1).
      const writes = action === 'compact' || action === 'migrate';
      const log = await EventLog.open({
        file: o.db,
        migrate: action === 'migrate',
        // status, verify and backup only read: the file (a backup, a log on read-only media) stays as it is
        ...(writes ? { writer: `switchboard db ${action}` } : { readOnly: true }),
      });
      try {
        const print = (text: string, value: unknown) =>
          process.stdout.write(o.json ? canonicalJson(value) + '\n' : text);
        switch (action) {
          case 'migrate':
            print(`schema version ${log.schema.version} (${log.schema.applied.join(', ')})\n`, log.schema);
            break;
          case 'status': {
            const latest = log.latestVersion();
            const status = {
              schemaVersion: log.schema.version,
              migrations: log.schema.applied,
              lastSeq: log.lastSeq(),
              latestVersion: latest?.version ?? 0,
              latestHash: latest?.hash ?? '',
              configRevision: log.latestConfigRevision()?.revision ?? 0,
              checkpoints: log.checkpoints().length,
              oldestSeq: log.oldestSeq(),
              ...replicationStatus(log),
              ...storageStatus(log),
            };
            // what retention keeps (online or db compact) and how fast the log grows (review4 G8)
            const kept = retentionStatus(log, null);
            const growth = logGrowth(log);
            const retained = {
              oldestVersion: kept.oldestVersion ?? 0,
              oldestAckId: kept.oldestAckId,
              lastCompaction: kept.lastCompaction ? describeCompaction(kept.lastCompaction) : 'never',
              growthLastHour: `${growth.bytes} bytes (${growth.events} events, ${growth.acks} ACK/NACK rows, ${growth.versions} versions${growth.bytesPerVersion === null ? '' : `; ${growth.bytesPerVersion} bytes per version`})`,
            };
            print(
              Object.entries({ ...status, ...retained })
                .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}\n`)
                .join(''),
              { ...status, ...retained, lastCompaction: kept.lastCompaction, growth },
            );
            break;
          }
          case 'verify': {
            const r = verifyLog(log, { deep: o.deep });
            const counts = Object.entries(r.rowsChecked)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ');
            const tail = r.ok
              ? await checkTail(log, servers, verifier, {
                  user: o.natsUser,
                  password: o.natsPassword ?? process.env.SWITCHBOARD_NATS_PASSWORD,
                })
              : undefined;
            const tailText = !tail
              ? ''
              : tail.anchored
                ? `; tail anchored by NATS at version ${tail.version}`
                : `; tail unanchored (${tail.reason})`;
            print(r.ok && !tail?.problem ? `ok: ${counts}${tailText}\n` : '', {
              ...r,
              ...(tail ? { ok: r.ok && !tail.problem, tail } : {}),
            });
            if (tail?.problem) {
              process.stderr.write(`switchboard: db verify: tail: ${tail.problem}\n`);
              setExit(1);
              return;
            }
            if (!r.ok) {
              const p = r.problems[0]!;
              const where = p.table === STORAGE ? STORAGE : `${p.table} row ${p.row}`;
              process.stderr.write(
                `switchboard: db verify: ${where}: ${p.problem}${r.problems.length > 1 ? ` (and ${r.problems.length - 1} more tables)` : ''}\n`,
              );
              setExit(1);
              return;
            }
            break;
          }
          case 'backup': {
            const r = backupLog(log, out!);
            print(`backup ${out} (${r.bytes} bytes)\n`, { out, ...r });
            break;
          }
          case 'compact': {
            const r = compactLog(log, before!);
            const held = r.acksHeldBy
              ? ` (held back by ${r.acksHeldBy.node}: its last report, row ${r.acksHeldBy.id}, is kept)`
              : '';
            print(
              `compacted: events up to seq ${r.cutSeq} removed (${r.eventsRemoved}), ${r.checkpointsWritten} checkpoints written, ${r.checkpointsRemoved} removed\n` +
                `compacted: acks up to row ${r.acksCutId} removed (${r.acksRemoved})${held}\n`,
              r,
            );
            // The file cannot tell what the versions stream holds; what it can tell is what a
            // republish (NATS lost its store, a new NATS) will leave out from now on (review2 R8).
            const from = replayableFrom(log);
            if (from !== undefined && from > 1)
              process.stderr.write(
                `note: db compact: versions before ${from} can no longer be rebuilt: should the versions stream lose them (NATS restarted without its store), the planner republishes from version ${from}, as a checkpoint\n`,
              );
            break;
          }
        }
        setExit(0);
      } finally {
        log.close();
      }
    });
}

type Tail =
  | { anchored: true; version: number; problem?: string }
  | { anchored: false; reason: string; problem?: undefined };

/**
 * The log's tail against the witness outside the file: the anchor on the newest published
 * version. Without --nats the tail is unanchored (a cut tail and a moved chain head look like a
 * shorter, valid log).
 */
async function checkTail(
  log: EventLog,
  servers: string[] | undefined,
  verifier: Verifier | undefined,
  auth: { user?: string; password?: string },
): Promise<Tail> {
  if (!servers)
    return { anchored: false, reason: 'no --nats: give the NATS URL to check it against the published versions' };
  const nc = await connectBus({
    servers,
    name: 'switchboard-db-verify',
    auth: auth.user !== undefined ? { user: auth.user, password: auth.password } : undefined,
    extra: { maxReconnectAttempts: 0, reconnect: false, timeout: 5000 },
  });
  try {
    const w = await newestPublishedAnchor(nc, { verifier });
    if (!w.anchored) return { anchored: false, reason: w.reason };
    return { anchored: true, version: w.version, problem: checkVersionAnchor(log, w.anchor) };
  } finally {
    await nc.close();
  }
}

/** A replica's place in its group's log stream and its recorded truncations (only for replicated files). */
/** Disk use and space left (review4 G8), with a warning line when little is left. */
function storageStatus(log: EventLog): Record<string, string | number> {
  const s = logStorage(log.file);
  return s
    ? { fileBytes: s.bytes, walBytes: s.walBytes, freeBytes: s.freeBytes, ...(s.warning ? { warning: s.warning } : {}) }
    : {};
}

function replicationStatus(log: EventLog): Record<string, string | number> {
  const mark = log.replicationMark();
  const cuts = log.truncations();
  if (!mark && cuts.length === 0) return {};
  return {
    ...(mark ? { replicationStream: mark.stream, replicationSeq: mark.streamSeq, replicationTerm: mark.term } : {}),
    truncations: cuts.length,
    rowsTruncated: cuts.reduce((n, t) => n + t.rowsDropped, 0),
  };
}
