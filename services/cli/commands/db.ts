import type { Command } from 'commander';
import { backupLog, compactLog, EventLog, verifyLog } from '../../../libs/eventlog/index.ts';
import { canonicalJson } from '../../../libs/model/index.ts';
import { UsageError } from '../cli-errors.ts';
import type { SetExit } from './index.ts';

interface DbOptions { db: string; beforeVersion?: string; deep?: boolean; json?: boolean }

const ACTIONS = ['migrate', 'status', 'verify', 'backup', 'compact'] as const;

/** `db migrate|status|verify|backup|compact --db FILE`: event log maintenance. */
export function registerDb(program: Command, setExit: SetExit): void {
  program.command('db')
    .description('event log maintenance: migrate | status | verify [--deep] | backup OUT | compact --before-version N')
    .argument('<action>', ACTIONS.join('|'))
    .argument('[out]', 'backup: the file to write')
    .requiredOption('--db <file>', 'event log (SQLite file)')
    .option('--before-version <n>', 'compact: remove events before this version')
    .option('--deep', 'verify: also rebuild every checkpoint and replay every version')
    .option('--json', 'machine-readable output')
    .action(async (action: string, out: string | undefined, o: DbOptions) => {
      if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`db: unknown action ${action} (one of ${ACTIONS.join(', ')})`);
      if (action === 'backup' && !out) throw new UsageError('db backup: missing OUT file');
      if (action !== 'backup' && out) throw new UsageError(`db ${action}: unexpected argument ${out}`);
      let before: number | undefined;
      if (action === 'compact') {
        before = Number(o.beforeVersion);
        if (o.beforeVersion === undefined || !Number.isInteger(before) || before < 1) throw new UsageError('db compact: --before-version N (a version number) is required');
      }
      const log = await EventLog.open({ file: o.db, migrate: action === 'migrate' });
      try {
        const print = (text: string, value: unknown) => process.stdout.write(o.json ? canonicalJson(value) + '\n' : text);
        switch (action) {
          case 'migrate':
            print(`schema version ${log.schema.version} (${log.schema.applied.join(', ')})\n`, log.schema);
            break;
          case 'status': {
            const latest = log.latestVersion();
            const status = {
              schemaVersion: log.schema.version, migrations: log.schema.applied, lastSeq: log.lastSeq(),
              latestVersion: latest?.version ?? 0, latestHash: latest?.hash ?? '', configRevision: log.latestConfigRevision()?.revision ?? 0,
              checkpoints: log.checkpoints().length,
              oldestSeq: (log.db.prepare('SELECT min(seq) AS s FROM events').get() as { s: number | null }).s ?? 0,
            };
            print(Object.entries(status).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}\n`).join(''), status);
            break;
          }
          case 'verify': {
            const r = verifyLog(log, { deep: o.deep });
            const counts = Object.entries(r.rowsChecked).map(([k, v]) => `${k} ${v}`).join(', ');
            print(r.ok ? `ok: ${counts}\n` : '', r);
            if (!r.ok) {
              const p = r.problems[0]!;
              process.stderr.write(`switchboard: db verify: ${p.table} row ${p.row}: ${p.problem}${r.problems.length > 1 ? ` (and ${r.problems.length - 1} more tables)` : ''}\n`);
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
            print(`compacted: events up to seq ${r.cutSeq} removed (${r.eventsRemoved}), ${r.checkpointsWritten} checkpoints written, ${r.checkpointsRemoved} removed\n`, r);
            break;
          }
        }
        setExit(0);
      } finally {
        log.close();
      }
    });
}
