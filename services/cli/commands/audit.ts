import type { Command } from 'commander';
import {
  CLOCK_STEP_BOUND_MS,
  diffVersions,
  eventChurn,
  EventLog,
  nodeAt,
  nodeLifecycle,
  nodesBehind,
  nodesOfNewestVersion,
  serviceHistory,
  type NodeLifecycleEntry,
  type ServiceOperationVersion,
} from '../../../libs/eventlog/index.ts';
import { canonicalJson, operationOutcome } from '../../../libs/model/index.ts';
import { UsageError } from '../cli-errors.ts';
import { refuseFlags } from '../flag-rules.ts';
import { inputFile, parseTime, time, wholeNumberOf } from '../flag-values.ts';
import { addOutputOptions, emit, outputFormat, table, type OutputFlags } from '../output.ts';
import type { SetExit } from './index.ts';

interface AuditOptions extends OutputFlags {
  db: string;
  at?: string;
  since?: string;
  all?: boolean;
}

const QUERIES = 'service NS/NAME | node NAME [--at TIME] | ops | diff A B | behind [--all] | churn [--since TIME]';

function version(v: string, what: string): number {
  const n = wholeNumberOf(v, 1);
  if (n === undefined)
    throw new UsageError(
      `audit diff: ${what} must be a version number (a whole number; versions start at 1), got ${JSON.stringify(v)}`,
    );
  return n;
}

function megabytes(bytes: number): string {
  return bytes < 1_000_000 ? `${(bytes / 1000).toFixed(1)} kB` : `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** A node clock this far from the planner's is flagged: beyond any ACK's transit time. */
const SKEW_FLAG_MS = 30_000;

function skewNote(ms: number | undefined): string {
  if (ms === undefined || Math.abs(ms) < SKEW_FLAG_MS) return '';
  // Either clock may be the wrong one (probe12 L7: a planner an hour ahead recorded the ACK of a node
  // whose clock was right, and the line blamed the node).
  return `; NODE CLOCK ${Math.round(Math.abs(ms) / 1000)} s ${ms > 0 ? 'AHEAD OF' : 'BEHIND'} the recording planner's (one of the two is wrong)`;
}

/** How many lifecycle entries `audit node` prints (the newest; -o json has them all). */
const LIFECYCLE_SHOWN = 10;

/** The Node's lifecycle lines of `audit node` (probe20 P20-7), newest last. */
function lifecycleText(entries: readonly NodeLifecycleEntry[], oldestSeq: number, upTo?: string): string {
  // a log compacted away its oldest events (db compact, retention): what it no longer holds is not "never"
  const cut = oldestSeq > 1 ? ` (events before seq ${oldestSeq} were compacted away)` : '';
  if (entries.length === 0)
    return `Node object: no event of this name in the log${upTo === undefined ? '' : ` up to ${upTo}`}${cut}\n`;
  const hidden = entries.length - LIFECYCLE_SHOWN;
  return (
    `Node object (${entries.length} change(s) in the log${hidden > 0 ? `, the newest ${LIFECYCLE_SHOWN} shown; -o json lists all` : ''}):\n` +
    entries
      .slice(-LIFECYCLE_SHOWN)
      .map(
        (e) =>
          `  ${e.receivedAt.slice(0, 19).replace('T', ' ')}Z seq ${e.seq} ${e.change} (uid ${e.uid}${e.addresses.length ? `, ${e.addresses.join(' ')}` : ''})\n`,
      )
      .join('')
  );
}

/** `audit --db FILE <query>`: who changed what, what each node ran, and who is behind. */
/**
 * The ops table's VERSION cell: the data version an operation made, or for a config rollback the
 * revision it left as the cluster default (`→ rev 2`; probe11 K8): PARAMS is cut in the narrow
 * table, and it alone said where each rollback went.
 */
function versionCell(p: { kind: string; version?: number | null; params: Record<string, unknown> }): string | number {
  if (p.version != null) return p.version;
  const st = p.params.configState as { defaultRevision?: unknown } | undefined;
  if (p.kind === 'rollback' && p.params.axis === 'config' && typeof st?.defaultRevision === 'number')
    return `→ rev ${st.defaultRevision}`;
  return '-';
}

export function registerAudit(program: Command, setExit: SetExit): void {
  const audit = program
    .command('audit')
    .description(`audit queries over the event log: ${QUERIES}`)
    .argument('<query>', 'service | node | ops | diff | behind | churn')
    .argument('[args...]', 'query arguments')
    .requiredOption('--db <file>', 'event log (SQLite file)', inputFile)
    .option(
      '--at <time>',
      'node: the time to look at: 10m or 2h (ago), 2026-11-30 14:02 (local time), ISO-8601 (default: now)',
      time,
    )
    .option('--all', 'behind: list current nodes too')
    .option('--since <time>', 'churn: count the events received since then (default: 1h ago)', time);
  addOutputOptions(audit).action(async (query: string, args: string[], o: AuditOptions, cmd: Command) => {
    const need = (n: number) => {
      if (args.length !== n)
        throw new UsageError(`audit ${query}: expected ${n} argument${n === 1 ? '' : 's'} (${QUERIES})`);
    };
    const run = {
      service: () => {
        need(1);
        if (!/^[^/]+\/[^/]+$/.test(args[0]!)) throw new UsageError(`audit service: expected NS/NAME, got ${args[0]}`);
      },
      node: () => need(1),
      ops: () => need(0),
      behind: () => need(0),
      churn: () => need(0),
      diff: () => {
        need(2);
        version(args[0]!, 'A');
        version(args[1]!, 'B');
      },
    }[query];
    if (!run) throw new UsageError(`audit: unknown query ${query} (${QUERIES})`);
    run();
    // each query's own flag, refused by the others
    for (const [flag, owner] of [
      ['--at', 'node'],
      ['--all', 'behind'],
      ['--since', 'churn'],
    ] as const)
      if (query !== owner) refuseFlags(cmd, [flag], `audit ${query}`, `it is for audit ${owner} only`);
    // churn counts from --since until now: a time to come is a range backwards
    if (o.since !== undefined && Date.parse(o.since) > Date.now())
      throw new UsageError(`--since ${o.since} is in the future: churn counts the events received from then until now`);
    // node --at reads what the log held then: a time to come has no answer yet (it read as today's)
    if (o.at !== undefined && Date.parse(o.at) > Date.now())
      throw new UsageError(`--at ${o.at} is in the future: audit node answers for a time the log has reached`);
    const format = outputFormat(o);
    const log = await EventLog.open({ file: o.db, readOnly: true });
    try {
      const out = (value: unknown, text: (wide: boolean) => string) => emit(format, value, text, canonicalJson);
      const cols = (...names: (string | [string, number])[]) =>
        names.map((n) => (typeof n === 'string' ? { header: n } : { header: n[0], max: n[1] }));
      if (query === 'service') {
        const [ns, name] = args[0]!.split('/') as [string, string];
        const h = serviceHistory(log, ns, name);
        const nodes = (acked: readonly { node: string; version: number }[]) =>
          acked.map((a) => `${a.node}@${a.version}`).join(',') || '-';
        // A version an operation made that changed the service is a row where it falls in time
        // (KIND operation), and a sentence below the table says what it did (probe11 K4).
        const opRow = (v: ServiceOperationVersion) => [
          '-',
          v.at,
          'operation',
          v.operation.kind.toUpperCase(),
          v.change,
          '-',
          v.version,
          nodes(v.ackedBy),
        ];
        const sentence = (v: ServiceOperationVersion) =>
          `v${v.version} ${v.operation.kind}${v.contentOf === undefined ? '' : ` to ${v.contentOf}`} by ${v.operation.actor} (${JSON.stringify(v.operation.reason)}): ${v.change}${v.latest && v.contentOf !== undefined ? ' (held: the latest version)' : ''}; acked by ${nodes(v.ackedBy)}\n`;
        const now = h.at(-1)?.now;
        out(h, (wide) =>
          h.length === 0
            ? `no events for service ${args[0]}${log.oldestSeq() > 1 ? ` (events before seq ${log.oldestSeq()} were compacted away)` : ''}\n`
            : table(
                cols('SEQ', 'RECEIVED', 'KIND', 'TYPE', ['NAME', 40], 'RV', 'VERSION', ['ACKED BY', 50]),
                h.flatMap((e) => [
                  [
                    e.event.seq,
                    e.event.receivedAt,
                    e.event.kind,
                    e.event.type,
                    e.event.name,
                    e.event.resourceVersion,
                    e.version ?? '-',
                    e.ackedBy
                      .map((a) => `${a.node}@${a.version}${a.contentOf ? `(=v${a.contentOf})` : ''}`)
                      .join(',') || '-',
                  ],
                  ...(e.after ?? []).map(opRow),
                ]),
                wide,
              ) +
              h
                .flatMap((e) => e.after ?? [])
                .map(sentence)
                .join('') +
              (now
                ? `now: version ${now.version}${now.contentOf === undefined ? '' : ` (version ${now.contentOf}'s content, held by a pin/rollback)`}: Service ${args[0]} ${now.service}\n`
                : ''),
        );
      } else if (query === 'node') {
        const r = nodeAt(log, args[0]!, o.at);
        const when = o.at === undefined ? 'now' : r.at;
        // Whether the cluster still has the node (probe20 P20-7): its last ACK alone read as a live node.
        const cluster = o.at === undefined ? nodesOfNewestVersion(log) : undefined;
        const gone =
          cluster && !cluster.nodes.has(r.node)
            ? `no Node object of this name in version ${cluster.version} (the newest): it left the cluster, or never had one\n`
            : '';
        const lifecycle = nodeLifecycle(log, r.node, o.at === undefined ? undefined : r.at);
        out(
          { ...r, lifecycle },
          () =>
            (r.unknown !== undefined
              ? `node ${r.node} at ${when}: unknown: ${r.unknown}\n`
              : !r.ack
                ? `node ${r.node} had acknowledged nothing by ${when}\n`
                : `node ${r.node} at ${when}: version ${r.ack.version} config revision ${r.ack.configRevision} mode ${r.ack.mode}\n` +
                  `acked at ${r.ack.at}${r.receivedAt ? ` (node clock), received ${r.receivedAt}${skewNote(r.clockSkewMs)}` : ' (node clock)'}, node state hash ${r.ack.nodeStateHash} (${r.nodeStateVerified === undefined ? 'config revision not in log' : r.nodeStateVerified ? 'verified by re-rendering' : r.madeByOlderRelease ? `does not match this release's re-rendering; version ${r.ack.version} was made by an older release (reading revision ${r.madeByOlderRelease.readingRevision}), whose appliers may have rendered it by older rules` : 'DOES NOT MATCH re-rendering'})\n` +
                  (r.nacksSince ? `${r.nacksSince} NACK(s) since\n` : '') +
                  `services (${r.services.length}): ${r.services.join(' ')}\n` +
                  (r.clockStep ? `UNCERTAIN: ${r.clockStep}\n` : '') +
                  gone) + lifecycleText(lifecycle, log.oldestSeq(), o.at === undefined ? undefined : r.at),
        );
      } else if (query === 'ops') {
        // outcome: accepted, or refused (CODE): why (probe11 K5; the refusal is in params.refused)
        const ops = log.operations().map((p) => ({ ...p, outcome: operationOutcome(p) }));
        // An operation stamped well before an earlier one: a planner's clock was wrong (probe12 L9:
        // ops at 13:58 then 11:59, unmarked). The rows are in the order they happened; marked `*`.
        let high = Number.NEGATIVE_INFINITY;
        const stepped = new Set<number>();
        for (const p of ops) {
          const t = Date.parse(p.at);
          if (t < high - CLOCK_STEP_BOUND_MS) stepped.add(p.id);
          if (t > high) high = t;
        }
        const atCell = (p: { id: number; at: string }, wide: boolean) =>
          (wide ? p.at : p.at.slice(0, 19).replace('T', ' ') + 'Z') + (stepped.has(p.id) ? '*' : '');
        const footnote =
          stepped.size > 0
            ? `* stamped more than ${CLOCK_STEP_BOUND_MS / 1000} s before an earlier operation: a planner's clock was wrong (operations are listed in the order they happened)\n`
            : '';
        // Reason before the long columns; params (config states, waves) are cut unless -o wide.
        out(ops, (wide) =>
          ops.length === 0
            ? 'no operations\n'
            : table(
                cols('ID', 'AT', 'KIND', ['ACTOR', 24], 'VERSION', ['REASON', 60], ['OUTCOME', 60], ['PARAMS', 40]),
                ops.map((p) => [
                  p.id,
                  atCell(p, wide),
                  p.kind,
                  p.actor,
                  versionCell(p),
                  p.reason,
                  p.outcome,
                  canonicalJson(p.params),
                ]),
                wide,
              ) + footnote,
        );
      } else if (query === 'diff') {
        const d = diffVersions(log, version(args[0]!, 'A'), version(args[1]!, 'B'));
        const line = (what: string, xs: readonly string[]) =>
          xs.length ? `${what} (${xs.length}): ${xs.join(' ')}\n` : '';
        out(
          d,
          () =>
            `diff version ${d.from} → ${d.to}\n` +
            (line('services added', d.servicesAdded) +
              line('services removed', d.servicesRemoved) +
              line('services changed', d.servicesChanged) +
              line('nodes added', d.nodesAdded) +
              line('nodes removed', d.nodesRemoved) +
              line('nodes changed', d.nodesChanged) || 'no differences\n'),
        );
      } else if (query === 'churn') {
        const c = eventChurn(log, o.since ?? parseTime('1h')!);
        out(c, (wide) =>
          c.events === 0
            ? `no events received since ${c.since}\n`
            : `${c.events} events, ${megabytes(c.bytes)} of objects since ${c.since} (seq ${c.fromSeq}–${c.toSeq})\n` +
              table(
                cols(['NAMESPACE', 40], 'EVENTS', 'BYTES', 'OBJECTS', ['BUSIEST OBJECT', 60], 'ITS EVENTS'),
                c.namespaces.map((n) => [
                  n.namespace || '-',
                  n.events,
                  megabytes(n.bytes),
                  n.objects,
                  n.busiest,
                  n.busiestEvents,
                ]),
                wide,
              ),
        );
      } else {
        // A node the newest version's data does not name left the cluster: not behind (probe20 P20-3).
        const cluster = nodesOfNewestVersion(log);
        const lag = nodesBehind(log, { all: o.all, cluster: cluster?.nodes });
        const left = o.all
          ? 0
          : nodesBehind(log, { all: true, cluster: cluster?.nodes }).filter((l) => l.status === 'LEFT').length;
        const leftNote = left
          ? `${left} node(s) that reported once are not in version ${cluster!.version}'s data (their Node left the cluster): not listed (--all lists them as LEFT)\n`
          : '';
        out(lag, (wide) =>
          lag.length === 0
            ? `no node is behind or failed\n${leftNote}`
            : leftNote +
              table(
                cols('NODE', 'STATUS', 'LAST REPORT', 'ACKED', 'LATEST', ['DETAIL', 60]),
                lag.map((l) => [
                  l.node,
                  l.status,
                  l.version,
                  l.ackedVersion,
                  l.latestVersion,
                  l.lastReport.type === 'NACK' ? l.lastReport.error : '-',
                ]),
                wide,
              ),
        );
      }
      setExit(0);
    } finally {
      log.close();
    }
  });
}
