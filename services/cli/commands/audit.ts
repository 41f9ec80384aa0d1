import type { Command } from 'commander';
import { diffVersions, EventLog, nodeAt, nodesBehind, serviceHistory } from '../../../libs/eventlog/index.ts';
import { canonicalJson } from '../../../libs/model/index.ts';
import { UsageError } from '../cli-errors.ts';
import type { SetExit } from './index.ts';

interface AuditOptions { db: string; at?: string; json?: boolean; all?: boolean }

const QUERIES = 'service NS/NAME | node NAME [--at TIME] | ops | diff A B | behind [--all]';

function table(header: string[], rows: (string | number)[][]): string {
  const all = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function version(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`audit diff: ${what} must be a version number, got ${v}`);
  return n;
}

/** `audit --db FILE <query>`: who changed what, what each node ran, and who is behind. */
export function registerAudit(program: Command, setExit: SetExit): void {
  program.command('audit')
    .description(`audit queries over the event log: ${QUERIES}`)
    .argument('<query>', 'service | node | ops | diff | behind')
    .argument('[args...]', 'query arguments')
    .requiredOption('--db <file>', 'event log (SQLite file)')
    .option('--at <time>', 'node: the time to look at (ISO-8601; default now)')
    .option('--all', 'behind: list current nodes too')
    .option('--json', 'machine-readable output')
    .action(async (query: string, args: string[], o: AuditOptions) => {
      const need = (n: number) => {
        if (args.length !== n) throw new UsageError(`audit ${query}: expected ${n} argument${n === 1 ? '' : 's'} (${QUERIES})`);
      };
      const run = {
        service: () => { need(1); if (!/^[^/]+\/[^/]+$/.test(args[0]!)) throw new UsageError(`audit service: expected NS/NAME, got ${args[0]}`); },
        node: () => need(1), ops: () => need(0), behind: () => need(0),
        diff: () => { need(2); version(args[0]!, 'A'); version(args[1]!, 'B'); },
      }[query];
      if (!run) throw new UsageError(`audit: unknown query ${query} (${QUERIES})`);
      run();
      const log = await EventLog.open({ file: o.db, migrate: false });
      try {
        const out = (value: unknown, text: () => string) => process.stdout.write(o.json ? canonicalJson(value) + '\n' : text());
        if (query === 'service') {
          const [ns, name] = args[0]!.split('/') as [string, string];
          const h = serviceHistory(log, ns, name);
          out(h, () => h.length === 0 ? `no events for service ${args[0]}\n` : table(
            ['SEQ', 'RECEIVED', 'KIND', 'TYPE', 'NAME', 'RV', 'VERSION', 'ACKED BY'],
            h.map((e) => [e.event.seq, e.event.receivedAt, e.event.kind, e.event.type, e.event.name, e.event.resourceVersion,
              e.version ?? '-', e.ackedBy.map((a) => `${a.node}@${a.version}`).join(',') || '-'])));
        } else if (query === 'node') {
          const r = nodeAt(log, args[0]!, o.at);
          const when = o.at === undefined ? 'now' : r.at;
          out(r, () => !r.ack ? `node ${r.node} had acknowledged nothing by ${when}\n` :
            `node ${r.node} at ${when}: version ${r.ack.version} config revision ${r.ack.configRevision} mode ${r.ack.mode}\n` +
            `acked at ${r.ack.at}, node state hash ${r.ack.nodeStateHash} (${r.nodeStateVerified === undefined ? 'config revision not in log' : r.nodeStateVerified ? 'verified by re-rendering' : 'DOES NOT MATCH re-rendering'})\n` +
            (r.nacksSince ? `${r.nacksSince} NACK(s) since\n` : '') +
            `services (${r.services.length}): ${r.services.join(' ')}\n`);
        } else if (query === 'ops') {
          const ops = log.operations();
          out(ops, () => ops.length === 0 ? 'no operations\n' : table(['ID', 'AT', 'KIND', 'ACTOR', 'VERSION', 'PARAMS', 'REASON'],
            ops.map((p) => [p.id, p.at, p.kind, p.actor, p.version ?? '-', canonicalJson(p.params), p.reason])));
        } else if (query === 'diff') {
          const d = diffVersions(log, version(args[0]!, 'A'), version(args[1]!, 'B'));
          const line = (what: string, xs: readonly string[]) => xs.length ? `${what} (${xs.length}): ${xs.join(' ')}\n` : '';
          out(d, () => `diff version ${d.from} → ${d.to}\n` + (line('services added', d.servicesAdded) + line('services removed', d.servicesRemoved) +
            line('services changed', d.servicesChanged) + line('nodes added', d.nodesAdded) + line('nodes removed', d.nodesRemoved) +
            line('nodes changed', d.nodesChanged) || 'no differences\n'));
        } else {
          const lag = nodesBehind(log, { all: o.all });
          out(lag, () => lag.length === 0 ? 'no node is behind or failed\n' : table(['NODE', 'STATUS', 'LAST REPORT', 'ACKED', 'LATEST', 'DETAIL'],
            lag.map((l) => [l.node, l.status, l.version, l.ackedVersion, l.latestVersion, l.lastReport.type === 'NACK' ? l.lastReport.error : '-'])));
        }
        setExit(0);
      } finally {
        log.close();
      }
    });
}
