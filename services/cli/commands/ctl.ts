import type { Command } from 'commander';
import { formatContentChange, type ContentChange } from '../../planner/version-diff.ts';
import { positiveInt, serverUrl } from '../flag-values.ts';
import { addOutputOptions, emit, outputFormat, table, type OutputFlags } from '../output.ts';
import { callPlanner, plannerStatus, type PlannerConnection } from '../planner-client.ts';
import { registerCtlOperations } from './ctl-operations.ts';
import { untilSynced, waitUntil } from './ctl-wait.ts';
import { rolloutHeadText } from '../operation-sentences.ts';
import { duration } from '../flag-values.ts';
import { UsageError } from '../cli-errors.ts';
import { refuseInvertedRange } from '../flag-rules.ts';
import type { SetExit } from './index.ts';
// leaves, not the indexes: ctl loads no SQLite and no zod (test/build/dist.test.ts)
import { describeCompaction, type CompactionRecord } from '../../../libs/eventlog/compaction-record.ts';
import { formatMs } from '../../../libs/control/wave-policy.ts';
import { unknownFieldsWarnings } from '../../../libs/control/node-status.ts';

/** What every ctl subcommand gets: where the planner is, who is asking, how to print. */
export interface CtlContext extends PlannerConnection {
  readonly format: ReturnType<typeof outputFormat>;
}

export function registerCtl(program: Command, setExit: SetExit): void {
  const ctl = program
    .command('ctl')
    .description('operate a running planner: status, versions, diffs, rollouts, rollbacks, pins, mode and config')
    .requiredOption('--server <url>', 'planner HTTP API, e.g. http://127.0.0.1:9440', serverUrl)
    .option('--token <token>', 'bearer token (default: $SWITCHBOARD_TOKEN)')
    .option('--actor <name>', "who is acting, recorded after the token's identity (e.g. ci/alice)");
  addOutputOptions(ctl);
  const ctx = (): CtlContext => {
    const o = ctl.opts<{ server: string; token?: string; actor?: string } & OutputFlags>();
    return {
      server: o.server,
      token: o.token ?? process.env.SWITCHBOARD_TOKEN,
      actor: o.actor,
      format: outputFormat(o),
    };
  };

  ctl
    .command('status')
    .description('every node with its status word')
    .action(async () => {
      const c = ctx();
      const s = await plannerStatus(c);
      const nodes = s.nodes as Record<string, unknown>[];
      // -o json: {nodes: [{node, status, ...}], ...}: every node with its status word.
      emit(c.format, s, (wide) => {
        const cfg = s.config as {
          defaultRevision: number;
          rollout?: Parameters<typeof rolloutHeadText>[0];
        };
        const head =
          `version ${s.latestVersion}${s.pinned ? ` (pinned to ${(s.pinned as { version: number }).version})` : ''}, config revision ${cfg.defaultRevision}` +
          (cfg.rollout ? `, ${rolloutHeadText(cfg.rollout, cfg.defaultRevision)}` : '') +
          `, rejected objects ${s.rejectedTotal}${s.synced ? '' : ', NOT SYNCED'}${s.sourceError ? `, SOURCE FAILING: ${s.sourceError}` : ''}${notCurrent(s)}\n` +
          (s.lastError ? `last error: ${String(s.lastError)}\n` : '') +
          // a part of /status the planner could not read (a damaged log file: probe13 R6); the rest is shown
          (s.logError ? `WARNING: status is partial: ${String(s.logError)}\n` : '') +
          ((s.storage as { warning?: string } | null)?.warning
            ? `WARNING: ${(s.storage as { warning: string }).warning}\n`
            : '') +
          ((s.clock as { warning?: string | null } | null | undefined)?.warning
            ? `WARNING: ${(s.clock as { warning: string }).warning}\n`
            : '') +
          // the planner's heap near the limit V8 stops it at (services/cli/heap-headroom.ts)
          ((s.memory as { warning?: string | null } | null | undefined)?.warning
            ? `WARNING: planner ${(s.memory as { warning: string }).warning}\n`
            : '') +
          // versions this planner made that the group's log does not hold (never published)
          ((s.notInGroupLog as { why?: string } | null | undefined)?.why
            ? `WARNING: ${(s.notInGroupLog as { why: string }).why}\n`
            : '') +
          retentionLine(s) +
          groupLine(s) +
          rejectedLines(s);
        // REASON says why a node has its word (the NACK's error for ERROR); -o wide adds the rest.
        const cols = [
          { header: 'NODE' },
          { header: 'STATUS' },
          { header: 'MODE' },
          { header: 'TARGET' },
          { header: 'APPLIED' },
          { header: 'CONFIG' },
          { header: 'LAG' },
        ];
        const more = wide
          ? [
              { header: 'HASH' },
              { header: 'HEALTH' },
              { header: 'LAST REPORT' },
              { header: 'HEARTBEAT' },
              { header: 'LAST ERROR' },
            ]
          : [];
        // HEALTH: the node's newest verdict (state read back + data-path probe); '-' from appliers that send none.
        const health = (n: Record<string, unknown>) =>
          (n.health as { verdict: string } | null | undefined)?.verdict ?? '-';
        return (
          head +
          table(
            [...cols, ...more, { header: 'REASON', max: 60 }],
            nodes.map((n) => [
              n.node as string,
              n.status as string,
              n.mode as string,
              n.targetVersion as number,
              n.appliedVersion as number,
              `${n.appliedConfigRevision ?? '-'}/${n.targetConfigRevision}`,
              n.lag as number,
              ...(wide
                ? [
                    n.hashMatch === null ? '-' : n.hashMatch ? 'ok' : 'MISMATCH',
                    health(n),
                    n.lastReportAt as string,
                    n.heartbeatAt as string,
                    n.lastError as string,
                  ]
                : []),
              (n.reason as string | undefined) ?? (n.lastError as string),
            ]),
            wide,
          ) +
          warningLines(nodes) +
          // appliers that do not know fields of their targets (probe15 U7): the word stays the hashes'
          unknownFieldsWarnings(nodes as { node: string }[])
            .map((w) => `WARNING: ${w}\n`)
            .join('')
        );
      });
      setExit(0);
    });

  ctl
    .command('versions')
    .description('data versions with hashes (the newest 1000 unless told)')
    .option('--from <n>', 'oldest version to list', positiveInt)
    .option('--to <n>', 'newest version to list', positiveInt)
    .option('--limit <n>', 'list at most this many, the newest of the range (up to 100000)', positiveInt)
    .action(async (o: { from?: number; to?: number; limit?: number }) => {
      refuseInvertedRange({ flag: '--from', value: o.from }, { flag: '--to', value: o.to });
      const c = ctx();
      const q = new URLSearchParams();
      for (const k of ['from', 'to', 'limit'] as const) if (o[k] !== undefined) q.set(k, String(o[k]));
      const v = await callPlanner(c, 'GET', `/versions${q.size ? `?${q}` : ''}`);
      const list = v.versions as {
        version: number;
        hash: string;
        reason: string;
        createdAt: string;
        contentOf?: number;
      }[];
      emit(
        c.format,
        v,
        (wide) =>
          table(
            [
              { header: 'VERSION' },
              { header: 'HASH' },
              { header: 'CREATED' },
              ...(wide ? [{ header: 'CONTENT OF' }] : []),
              { header: 'REASON', max: 60 },
            ],
            list.map((x) => [
              x.version,
              wide ? x.hash : x.hash.slice(0, 16),
              x.createdAt,
              ...(wide ? [x.contentOf ?? null] : []),
              x.reason,
            ]),
            wide,
          ) +
          // a planner of the previous release answers without `omitted`
          (Number(v.omitted) > 0
            ? `${v.omitted} older version${v.omitted === 1 ? '' : 's'} not listed (--to ${Number(list[0]?.version) - 1} or --limit for more)\n`
            : ''),
      );
      setExit(0);
    });

  ctl
    .command('diff <a> <b>')
    .description('what changed between two data versions, inside each service too')
    .action(async (a: string, b: string) => {
      const c = ctx();
      const d = await callPlanner(c, 'GET', `/diff?a=${versionArg(a, 'A')}&b=${versionArg(b, 'B')}`);
      emit(c.format, d, () => formatDiff(d as unknown as DiffAnswer));
      setExit(0);
    });

  const config = ctl
    .command('config')
    .description('proxy config: show a revision, or set fields (a new revision, optionally rolled out)');
  config
    .command('show')
    .description('the cluster default config (or --revision N)')
    .option('--revision <n>', 'config revision to show', positiveInt)
    .action(async (o: { revision?: number }) => {
      const c = ctx();
      const r = await callPlanner(c, 'GET', `/config${o.revision ? `?revision=${o.revision}` : ''}`);
      emit(
        c.format,
        r,
        () =>
          `config revision ${r.revision} (hash ${String(r.hash).slice(0, 16)})${r.revision === (r.state as { defaultRevision: number }).defaultRevision ? ', the cluster default' : ''}\n` +
          Object.entries(r.config as Record<string, unknown>)
            .map(([k, v]) => `  ${k}: ${Array.isArray(v) ? v.join(',') || '(none)' : v === '' ? '(none)' : String(v)}`)
            .join('\n') +
          '\n',
      );
      setExit(0);
    });

  ctl
    .command('wait')
    .description('wait until a condition holds, with progress on stderr')
    .requiredOption('--for <condition>', 'synced: every node runs its target')
    .option('--timeout <duration>', 'give up after this long (exit 1)', duration, 5 * 60_000)
    .action(async (o: { for: string; timeout: number }) => {
      if (o.for !== 'synced') throw new UsageError(`--for ${o.for}: unknown condition (synced)`);
      const r = await waitUntil(ctx(), untilSynced, o.timeout, 'every node SYNCED');
      if (!r.ok) throw new Error(r.line);
      process.stdout.write(`${r.line}\n`);
      setExit(0);
    });

  registerCtlOperations(ctl, config, ctx, setExit);
}

function versionArg(v: string, name: string): number {
  try {
    return positiveInt(v);
  } catch {
    throw new UsageError(`diff: ${name} must be a positive version number, got ${JSON.stringify(v)}`);
  }
}

interface DiffAnswer {
  a: number;
  b: number;
  addedServices: string[];
  removedServices: string[];
  changedServices: string[];
  addedNodes: string[];
  removedNodes: string[];
  changedNodes: string[];
  serviceChanges?: Record<string, ContentChange[]>;
  nodeChanges?: Record<string, ContentChange[]>;
}

/** `+ service a`, `- node n`, `~ service b` followed by its field changes, indented. */
export function formatDiff(d: DiffAnswer): string {
  const lines: string[] = [];
  const group = (sign: string, kind: string, names: string[], changes?: Record<string, ContentChange[]>) => {
    for (const n of names) {
      lines.push(`${sign} ${kind} ${n}`);
      for (const ch of changes?.[n] ?? [])
        lines.push(
          `    ${ch.change === 'added' ? '+' : ch.change === 'removed' ? '-' : '~'} ${formatContentChange(ch)}`,
        );
    }
  };
  group('+', 'service', d.addedServices);
  group('-', 'service', d.removedServices);
  group('~', 'service', d.changedServices, d.serviceChanges);
  group('+', 'node', d.addedNodes);
  group('-', 'node', d.removedNodes);
  group('~', 'node', d.changedNodes, d.nodeChanges);
  return lines.length ? lines.join('\n') + '\n' : `no differences between version ${d.a} and ${d.b}\n`;
}

/**
 * What the planner's log keeps, in one line (/status `retention`, online retention: docs/eventlog.md):
 * the policy, the oldest version the log still rebuilds (pins and rollbacks reach back to it), the
 * last compaction as `db status` describes it, and what held a run back or made it fail. Absent when
 * /status has no `retention` (an older planner) or retention is off and never ran. `ctl status
 * --json` carries it as it is.
 */
function retentionLine(s: Record<string, unknown>): string {
  const r = s.retention as
    | {
        policy: { versions?: number; ageMs?: number } | null;
        oldestVersion: number | null;
        lastCompaction: CompactionRecord | null;
        heldBy?: string;
        error?: string;
      }
    | null
    | undefined;
  // nothing to say while retention is off and the log was never compacted (the table stays as it was)
  if (!r || (!r.policy && !r.lastCompaction && !r.error)) return '';
  const p = r.policy;
  const kept = [
    p?.versions !== undefined ? `the newest ${p.versions} versions` : '',
    p?.ageMs !== undefined ? `every version current within ${formatMs(p.ageMs)}` : '',
  ].filter(Boolean);
  const policy =
    kept.length === 0
      ? 'off (the log keeps every version)'
      : `keeps ${kept.join(' or ')}${kept.length > 1 ? ', whichever keeps more' : ''}`;
  return (
    `retention: ${policy}; oldest version ${r.oldestVersion ?? 'none'}; last compaction ${r.lastCompaction ? describeCompaction(r.lastCompaction) : 'never'}` +
    `${r.heldBy ? `; held back by ${r.heldBy}` : ''}${r.error ? `; FAILING: ${r.error}` : ''}\n`
  );
}

/**
 * `, NOT CURRENT: why` on the head line while the planner asked knows no leader of its group
 * (/status `noLeader`): nothing the cluster changes becomes a version then, whatever the table
 * says (probe8 J1: the head line looked as usual while JetStream refused the lease). Empty otherwise,
 * and for a planner of a release without `noLeader`.
 */
export function notCurrent(s: Record<string, unknown>): string {
  const n = s.noLeader as { forS: number; cause: string; lasting: boolean } | null | undefined;
  if (!n || typeof n !== 'object') return '';
  return `, NOT CURRENT: no planner leads group ${String(s.group)} (for ${n.forS} s: ${n.cause})`;
}

/**
 * The planner group in one line (once it has more than one planner, or this one follows): who
 * leads in which term, and each member's role and replication lag as this planner last saw them (`ctl status --json` carries `self` and `planners` as they are).
 */
function groupLine(s: Record<string, unknown>): string {
  const self = s.self as { id: string; leader: boolean; term: number; lagRows: number | null } | undefined;
  const planners = s.planners as { id: string; leader: boolean; term: number; lagRows: number | null }[] | undefined;
  // a lone leader's table stays as it was before groups existed
  if (!self || !planners || (planners.length <= 1 && self.leader)) return '';
  const leader = s.leader as { id: string; term: number } | null;
  const last = s.lastLeader as { id: string; term: number; renewedAgoS: number } | undefined;
  const noLeader = last
    ? `no leader known (last: planner ${last.id}, term ${last.term}, renewed ${last.renewedAgoS} s ago)`
    : 'no leader known';
  const lag = (n: number | null) => (n === null ? '' : `, lag ${n} rows`);
  const members = planners
    .map((p) => `${p.id}${p.id === self.id ? ' (this one)' : ''} ${p.leader ? 'leader' : 'follower'}${lag(p.lagRows)}`)
    .join('; ');
  // a member that cannot follow (its /readyz): seen here too, not only on its own port (probe13 R4)
  const problems = (planners as { id: string; problem?: string | null }[])
    .filter((p) => p.problem && p.id !== self.id)
    .map((p) => `WARNING: planner ${p.id}: ${String(p.problem)}\n`)
    .join('');
  return `group ${String(s.group)}: ${leader ? `planner ${leader.id} leads in term ${leader.term}` : noLeader}; planners: ${members}\n${problems}`;
}

/**
 * `WARN NODE: text` lines under the status table, one per warning a node's newest heartbeat carries
 * (/status `nodes[].warnings`, services/applier/node-warnings.ts): what is no failure yet wants an
 * operator (a change-notification listener down, a forward drop policy). Each is one line (the
 * table's rule for cells) and whole, also without -o wide: a warning cut short says too little.
 * Nothing from a planner older than the field.
 */
export function warningLines(nodes: readonly Record<string, unknown>[]): string {
  let out = '';
  for (const n of nodes) {
    const ws = Array.isArray(n.warnings) ? n.warnings : [];
    for (const w of ws) out += `WARN ${String(n.node)}: ${String(w).replace(/\s*\n\s*/g, ' ')}\n`;
  }
  return out;
}

/**
 * What the head's "rejected objects N" counts, the first few by name: a count alone sent the
 * operator to -o json to learn which object was refused and why. /status lists two shapes: an
 * object the planner's data refused (kind, namespace, name, the event seq) and a source's or a
 * VIP claim's rejection (ref, source).
 */
function rejectedLines(s: Record<string, unknown>): string {
  const shown = 3;
  type Listed = {
    ref?: string;
    source?: string;
    kind?: string;
    namespace?: string;
    name?: string;
    seq?: number;
    reason?: string;
  };
  const rejected = (Array.isArray(s.rejected) ? s.rejected : []) as Listed[];
  const total = typeof s.rejectedTotal === 'number' ? s.rejectedTotal : rejected.length;
  if (total === 0 || rejected.length === 0) return '';
  const what = (r: Listed) =>
    r.ref !== undefined
      ? `${r.ref}${r.source ? ` (${r.source})` : ''}`
      : `${r.kind ?? 'object'} ${r.namespace ? `${r.namespace}/` : ''}${r.name ?? '?'}${r.seq !== undefined ? ` (event seq ${r.seq})` : ''}`;
  const lines = rejected.slice(0, shown).map((r) => `rejected ${what(r)}: ${r.reason ?? 'no reason given'}\n`);
  return lines.join('') + (total > shown ? `… ${total - shown} more rejected (-o json lists them)\n` : '');
}
