import type { Command } from 'commander';
import { EventLog, readingRevisionAtSeq, rebuildAtSeq, replayAt, replayVersion } from '../../../libs/eventlog/index.ts';
import { canonicalJson } from '../../../libs/model/index.ts';
import { UsageError } from '../cli-errors.ts';
import { inputFile, time, wholeNumberOf } from '../flag-values.ts';
import type { SetExit } from './index.ts';

interface ReplayOptions {
  db: string;
  toVersion?: string;
  toSeq?: string;
  at?: string;
  json?: boolean;
  sequential?: boolean;
}

/** --to-version (a version: from 1) and --to-seq (an event seq: from 0, the state before the first). */
function count(v: string, flag: '--to-version' | '--to-seq'): number {
  const min = flag === '--to-version' ? 1 : 0;
  const n = wholeNumberOf(v, min);
  if (n === undefined)
    throw new UsageError(
      `${flag} must be ${flag === '--to-version' ? 'a version number (a whole number; versions start at 1)' : 'an event seq (a whole number from 0)'}, got ${JSON.stringify(v)}`,
    );
  return n;
}

/** `replay --db FILE [--to-version N | --to-seq S | --at TIME] [--json]`: rebuild state from the log. */
export function registerReplay(program: Command, setExit: SetExit): void {
  program
    .command('replay')
    .description('rebuild a version from the event log (nearest checkpoint + events) and print its hash')
    .requiredOption('--db <file>', 'event log (SQLite file)', inputFile)
    .option('--to-version <n>', 'version to rebuild (default: the latest)')
    .option('--to-seq <s>', 'rebuild the state after event seq S')
    .option(
      '--at <time>',
      'rebuild the version current at a time: 10m or 2h (ago), 2026-11-30 14:02 (local time), ISO-8601',
      time,
    )
    .option('--sequential', 'apply every event in order instead of the last per object (slower; a cross-check)')
    .option('--json', 'machine-readable output')
    .action(async (o: ReplayOptions) => {
      const chosen = [o.toVersion, o.toSeq, o.at].filter((x) => x !== undefined).length;
      if (chosen > 1) throw new UsageError('replay: give at most one of --to-version, --to-seq, --at');
      // Flag values before the file: a usage error must not depend on what the log holds.
      if (o.toVersion !== undefined) count(o.toVersion, '--to-version');
      if (o.toSeq !== undefined) count(o.toSeq, '--to-seq');
      const log = await EventLog.open({ file: o.db, readOnly: true });
      try {
        const opts = { sequential: o.sequential };
        if (o.toSeq !== undefined) {
          const seq = count(o.toSeq, '--to-seq');
          // Read with the rules the planner read those events with (an upgraded log holds both).
          const readingRevision = readingRevisionAtSeq(log, seq);
          const r = rebuildAtSeq(log, seq, { ...opts, readingRevision });
          const out = {
            seq: r.seq,
            hash: r.hash,
            checkpointSeq: r.checkpointSeq,
            eventsApplied: r.eventsApplied,
            readingRevision,
          };
          process.stdout.write(o.json ? canonicalJson(out) + '\n' : `seq ${r.seq} hash ${r.hash}\n`);
          setExit(0);
          return;
        }
        let r;
        if (o.at !== undefined) r = replayAt(log, o.at, opts);
        else {
          const n = o.toVersion !== undefined ? count(o.toVersion, '--to-version') : log.latestVersion()?.version;
          if (!n) throw new Error(`${o.db}: the log has no versions yet`);
          r = replayVersion(log, n, opts);
        }
        const match = r.hash === r.version.hash;
        const uncertain = o.at === undefined ? undefined : log.versionAtUncertain(new Date(o.at).toISOString());
        const out = {
          version: r.version.version,
          hash: r.hash,
          recordedHash: r.version.hash,
          match,
          contentOf: r.version.contentOf,
          sourceVersion: r.source.version,
          seq: r.seq,
          checkpointSeq: r.checkpointSeq,
          eventsApplied: r.eventsApplied,
          ...(uncertain && { clockStep: uncertain }),
        };
        process.stdout.write(o.json ? canonicalJson(out) + '\n' : `version ${r.version.version} hash ${r.hash}\n`);
        // stdout keeps its one line (`version N hash HEX`); the doubt goes beside it
        if (uncertain && !o.json) process.stderr.write(`switchboard: replay: UNCERTAIN: ${uncertain}\n`);
        if (!match)
          process.stderr.write(
            `switchboard: replay: version ${r.version.version} rebuilt to ${r.hash} but the log recorded ${r.version.hash}\n`,
          );
        setExit(match ? 0 : 1);
      } finally {
        log.close();
      }
    });
}
