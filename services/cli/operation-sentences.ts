import { formatFieldChanges, type FieldChange } from '../../libs/control/field-changes.ts';
import { describeConfigChange } from './config-fields.ts';
import type { Json } from './planner-client.ts';

/**
 * What ctl prints after an operation: one or two sentences saying what changed, the version or
 * revision it made, and the rollout it started. (`-o json|yaml` prints the planner's answer.)
 */

interface Rollout {
  configRevision: number;
  fromRevision: number;
  status: string;
  wave: number;
  waves: string[][];
  haltedBy?: { node: string; error: string };
  pauseOnError?: boolean;
  policy?: { bakeMs: number; waveTimeoutMs: number; maxFailures: string; pauseBefore: number[] };
  waveStartedAt?: string;
  bakeStartedAt?: string;
  failed?: { node: string; error: string }[];
  gate?: number;
  startedAt: string;
  updatedAt: string;
}
interface ConfigState {
  defaultRevision: number;
  previousDefault?: number;
  rollout?: Rollout;
  /** On a rollout's start: what it changes against the default it started from (K1). */
  changes?: FieldChange[];
}
interface Pin {
  version: number;
  kind: string;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function waveText(r: Rollout): string {
  const wave = r.waves[r.wave] ?? [];
  const fleet = r.waves.at(-1)?.length ?? 0;
  const names = wave.length <= 3 ? ` (${wave.join(', ')})` : '';
  return `wave ${r.wave + 1}/${r.waves.length}: ${wave.length}/${plural(fleet, 'node')}${names}`;
}

/**
 * How a rollout stopped (probe11 K8): a rollback keeps haltedBy on the rollout it marks rolled-back,
 * and only a halt or a pause for failed nodes sets it (resume clears it), so a rolled-back rollout
 * with haltedBy was halted (paused with --pause-on-error) by that node first. Undefined: no node stopped it.
 */
function stoppedBy(r: Pick<Rollout, 'status' | 'haltedBy' | 'pauseOnError'>): string | undefined {
  if (!r.haltedBy) return undefined;
  const stop = r.status === 'rolled-back' ? (r.pauseOnError ? 'paused' : 'halted') : r.status;
  return `${stop} by ${r.haltedBy.node}`;
}

/**
 * The line naming the node that stopped a rollout and why, in parts: `ctl rollout status` joins
 * them (`halted by b: nft: bad, then rolled back`), the console marks them up (its snapshot carries
 * them, console-snapshot.ts: the page is plain browser JavaScript and cannot import this module).
 * Undefined: no node stopped it.
 */
export function haltWords(
  r: Pick<Rollout, 'status' | 'haltedBy' | 'pauseOnError'>,
): { by: string; error: string; after: string } | undefined {
  const by = stoppedBy(r);
  if (!by || !r.haltedBy) return undefined;
  return { by, error: r.haltedBy.error, after: r.status === 'rolled-back' ? ', then rolled back' : '' };
}

/**
 * The line `ctl rollout status` adds when a rolled-back rollout's revision is the cluster default
 * again (a later rollback went back to it; probe11 K8), lest the revision in force read as the one
 * rolled back. The console shows the same words (its snapshot carries them, console-snapshot.ts).
 * Undefined otherwise.
 */
export function defaultAgainWords(
  r: Pick<Rollout, 'configRevision' | 'status'> | undefined,
  defaultRevision: number,
): string | undefined {
  return r?.status === 'rolled-back' && r.configRevision === defaultRevision
    ? `revision ${r.configRevision} has since been made the cluster default again by a rollback`
    : undefined;
}

/**
 * `ctl status`'s rollout words: `rollout of 13 halted by node-a, then rolled back (wave 1/2)`. A
 * rolled-back rollout whose revision is the default again (a later rollback went back to it) says
 * so, lest the revision in force read as the one rolled back (probe11 K8).
 */
export function rolloutHeadText(
  r: Pick<Rollout, 'configRevision' | 'status' | 'wave' | 'waves' | 'haltedBy' | 'pauseOnError'>,
  defaultRevision: number,
): string {
  const by = stoppedBy(r);
  const words = r.status === 'rolled-back' && by ? `${by}, then rolled back` : (by ?? r.status);
  const again =
    r.status === 'rolled-back' && r.configRevision === defaultRevision
      ? `, revision ${r.configRevision} made the default again since by a rollback`
      : '';
  return `rollout of ${r.configRevision} ${words} (wave ${r.wave + 1}/${r.waves.length})${again}`;
}

export function rolloutSentence(st: ConfigState, did?: 'resumed' | 'promoted'): string {
  const r = st.rollout;
  if (!r) return `no rollout in progress; the cluster default is config revision ${st.defaultRevision}.\n`;
  const verb = did ?? (r.status === 'running' ? 'started' : r.status);
  if (r.status === 'completed')
    return `rollout of config revision ${r.configRevision} completed: it is the cluster default on every node.\n`;
  const halted = r.haltedBy ? `: ${r.haltedBy.node} failed: ${r.haltedBy.error}` : '';
  // A gate means something only while the rollout can still go on (older logs kept it on rollback).
  const open = r.status === 'running' || r.status === 'paused';
  const gate = open && r.gate !== undefined ? `; wave ${r.gate} waits for \`ctl rollout --promote\`` : '';
  const changes = st.changes?.length
    ? ` (${formatFieldChanges(st.changes)} against the default, revision ${r.fromRevision})`
    : '';
  return `rollout of config revision ${r.configRevision}${changes} ${verb} at ${waveText(r)}${halted}${gate}.\n`;
}

const clock = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

/** `ctl rollout status`: the status word, the wave, the bake and timeout clocks, the policy, failures. */
/** A node of the wave as GET /status's rollout.waveNodes lists it. */
export interface WaveNodeView {
  node: string;
  status: string;
  appliedConfigRevision: number | null;
  verdict: string | null;
  verdictRevision: number | null;
  reason: string | null;
  injected?: boolean;
  probe: {
    attempted: number;
    succeeded: number;
    failed: number;
    unreachable: number;
    latencyMs: { p50: number; max: number } | null;
  } | null;
}

/** `  node-1  SYNCED  config 2  unhealthy  probe 0/1 ok: tcp/...: ...` — one line per node of the wave. */
function waveNodeLines(nodes: readonly WaveNodeView[]): string[] {
  if (nodes.length === 0) return [];
  const w = Math.max(...nodes.map((n) => n.node.length));
  return [
    'nodes of the wave (status, config revision run, health verdict: why):',
    ...nodes.map((n) => {
      const runs = n.appliedConfigRevision === null ? 'config ?' : `config ${n.appliedConfigRevision}`;
      const verdict =
        n.status === 'LEFT'
          ? 'left the fleet (no Node object of this name, silent)'
          : n.verdict === null
            ? 'no verdict (applier sends none)'
            : `${n.verdict}${n.verdictRevision !== null && n.verdictRevision !== n.appliedConfigRevision ? ` (about config ${n.verdictRevision})` : ''}: ${n.reason ?? ''}`;
      return `  ${n.node.padEnd(w)}  ${n.status.padEnd(8)}  ${runs.padEnd(9)}  ${verdict}`;
    }),
  ];
}

/**
 * `elapsed`: the wave's and bake's durations as the planner measures them (/status rollout
 * waveElapsedMs, bakeElapsedMs: what its gates go by); without them, from the wall stamps and
 * `nowMs`. Both lines read one measure: a wave stamped by a planner whose clock was ahead read
 * "wave started 0s ago, times out in 66m20s" (probe12 L6).
 */
export function rolloutStatusText(
  st: ConfigState,
  nowMs: number,
  waveNodes: readonly WaveNodeView[] = [],
  elapsed: { readonly waveMs?: number; readonly bakeMs?: number } = {},
): string {
  const r = st.rollout;
  if (!r) return `no rollout; the cluster default is config revision ${st.defaultRevision}.\n`;
  const lines = [
    `rollout of config revision ${r.configRevision} (from ${r.fromRevision}): ${r.status}, ${waveText(r)}`,
  ];
  const p = r.policy;
  if (p)
    lines.push(
      `policy: bake ${clock(p.bakeMs)}, wave timeout ${clock(p.waveTimeoutMs)}, max failures ${p.maxFailures}${p.pauseBefore.length ? `, pause before wave ${p.pauseBefore.join(',')}` : ''}`,
    );
  if (r.status === 'running') {
    const waveAge = elapsed.waveMs ?? Math.max(0, nowMs - Date.parse(r.waveStartedAt ?? r.startedAt));
    lines.push(`wave started ${clock(waveAge)} ago${p ? `, times out in ${clock(p.waveTimeoutMs - waveAge)}` : ''}`);
    if (r.bakeStartedAt) {
      const baked = elapsed.bakeMs ?? Math.max(0, nowMs - Date.parse(r.bakeStartedAt));
      lines.push(`bake: ${clock(baked)} of ${clock(p?.bakeMs ?? 0)}`);
    } else lines.push('bake: not started (waiting for every node of the wave to ACK)');
  }
  if (r.gate !== undefined && (r.status === 'running' || r.status === 'paused'))
    lines.push(`waiting before wave ${r.gate}: continue with \`ctl rollout --promote\``);
  for (const f of r.failed ?? []) lines.push(`failed: ${f.node}: ${f.error}`);
  const halt = haltWords(r);
  if (halt) lines.push(`${halt.by}: ${halt.error}${halt.after}`);
  const again = defaultAgainWords(r, st.defaultRevision);
  if (again) lines.push(again);
  lines.push(...waveNodeLines(waveNodes));
  return `${lines.join('\n')}\n`;
}

export function pinSentence(kind: 'pin' | 'unpin' | 'rollback', r: Json): string {
  const v = r.version as number | null;
  const pin = r.pinned as Pin | null;
  const hash = String(r.hash ?? '').slice(0, 12);
  if (kind === 'unpin') {
    return v === null
      ? 'unpinned: the published content already is the live content (no new version).\n'
      : `unpinned: version ${v} publishes the live content (hash ${hash}).\n`;
  }
  const what = kind === 'pin' ? 'pinned' : 'rolled back data';
  const held = pin ? `; new data is held until \`ctl unpin\`` : '';
  // K2: last writer wins, said: the pin this one replaced, and who had set it
  const was = r.replaced as { version: number; kind: string; actor: string | null; at: string | null } | undefined;
  const replaced = was
    ? `; it replaced the ${was.kind} to version ${was.version}${was.actor ? ` by ${was.actor} at ${was.at}` : ''}`
    : '';
  return v === null
    ? `${what}: the published content already is version ${pin?.version}'s (no new version)${held}${replaced}.\n`
    : `${what}: version ${v} publishes version ${pin?.version}'s content (hash ${hash})${held}${replaced}.\n`;
}

/**
 * `config rolled back: the cluster default is config revision 5 on every node (from revision 9;
 * rollout of revision 10 rolled back).` — the rollout is named only when this rollback stopped it
 * (`stoppedRollout`; probe11 K8), the revision left when the planner says (`rolledBackFrom`).
 */
export function configRollbackSentence(st: ConfigState & { rolledBackFrom?: number; stoppedRollout?: number }): string {
  // an older planner answers without rolledBackFrom/stoppedRollout: its rolled-back rollout, as before
  const stopped =
    st.rolledBackFrom !== undefined
      ? st.stoppedRollout
      : st.rollout?.status === 'rolled-back'
        ? st.rollout.configRevision
        : undefined;
  const rollout = stopped !== undefined ? `rollout of revision ${stopped} rolled back` : '';
  // K8: a rollback to the default in force moved nothing (unless it stopped a rollout)
  if (st.rolledBackFrom === st.defaultRevision)
    return stopped !== undefined
      ? `config rolled back: the rollout of revision ${stopped} is rolled back; config revision ${st.defaultRevision} stays the cluster default on every node.\n`
      : `config revision ${st.defaultRevision} already was the cluster default on every node: nothing moved.\n`;
  const notes = [st.rolledBackFrom !== undefined ? `from revision ${st.rolledBackFrom}` : '', rollout].filter(Boolean);
  return `config rolled back: the cluster default is config revision ${st.defaultRevision} on every node${notes.length ? ` (${notes.join('; ')})` : ''}.\n`;
}

/** After `mode` or `config set`: the revision made (or not), what changed, the rollout started. */
export function configChangeSentence(r: Json, wavesGiven: boolean): string {
  const rev = r.revision as number;
  const st = r.state as ConfigState;
  const change = describeConfigChange(r.previous as Json, r.config as Json);
  if (!change)
    return `nothing changed: the cluster default (config revision ${st.defaultRevision}) already has these values; no revision made.\n`;
  // reused: the values of an existing revision, answered instead of a twin of it (review5 F2)
  const head = `config revision ${rev}${r.reused === true ? ' (an existing revision with these values)' : ''}: ${change}.`;
  if (st.rollout && st.rollout.configRevision === rev && wavesGiven) return `${head} ${rolloutSentence(st)}`;
  if (st.defaultRevision === rev) return `${head} It already is the cluster default.\n`;
  // K1: made over the default while another revision rolls out; once that one is the default,
  // rolling this one out would put its fields back, and the rollout is refused (or --force).
  const other = st.rollout && ['running', 'paused'].includes(st.rollout.status) ? st.rollout.configRevision : 0;
  const over = other
    ? ` It is made over the default, revision ${st.defaultRevision}, not over revision ${other} (rolling out now).`
    : '';
  return `${head}${over} Not rolled out yet: ctl rollout --config-revision ${rev} --waves 1,10%,50%,100%\n`;
}
