import { printable } from '../output.ts';
import { plannerStatus, type Json, type PlannerConnection } from '../planner-client.ts';

interface NodeRow {
  node: string;
  status: string;
  appliedConfigRevision: number | null;
  targetVersion?: number;
  lastError: string | null;
  /** false: a node outside planner --node-selector that reports anyway; shown, not waited for. */
  fleet?: boolean;
}

/** The rows a wait counts: the fleet (rows outside --node-selector are shown by status only). */
const fleetRows = (s: Json) => (s.nodes as NodeRow[]).filter((n) => n.fleet !== false);
interface RolloutState {
  configRevision: number;
  status: string;
  wave: number;
  waves: string[][];
  haltedBy?: { node: string; error: string };
}

/** What a wait looks at each poll: done (ok or not), or a progress line. */
type Check = (s: Json) => { done: true; ok: boolean; line: string } | { done: false; line: string };

const seconds = (ms: number) =>
  ms < 60_000
    ? `${Math.round(ms / 1000)}s`
    : `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;

/** Every node runs its target: the planner synced and ready, its group led, and each node's word is SYNCED. */
export const untilSynced: Check = (s) => {
  // Nodes SYNCED on the newest version prove nothing while that version is not the cluster's newest
  // state: a planner that cannot log or publish what it sees, or a group nobody leads (probe8 R2,
  // J1). Not done, so a deploy's `ctl wait` waits it out or times out naming it. (An older planner's
  // /status has no `notReady`: nothing to add then.)
  if (typeof s.notReady === 'string') return { done: false, line: `planner not ready: ${s.notReady}` };
  if (typeof s.group === 'string' && s.leader === null)
    return { done: false, line: `no planner leads group ${s.group}: cluster changes are not versioned` };
  const nodes = fleetRows(s);
  // A leader measures nodes against the targets it wrote (probe14 P3): SYNCED on an older target
  // while the newest version is not published yet is not done.
  const notSynced = nodes.filter(
    (n) => n.status !== 'SYNCED' || (n.targetVersion ?? Infinity) < Number(s.latestVersion),
  );
  if (s.synced && notSynced.length === 0)
    return {
      done: true,
      ok: true,
      line: `all ${nodes.length} node${nodes.length === 1 ? '' : 's'} SYNCED on version ${s.latestVersion}`,
    };
  const which =
    notSynced
      .slice(0, 4)
      .map((n) => (n.status === 'SYNCED' ? `${n.node} told version ${n.targetVersion} only` : `${n.node} ${n.status}`))
      .join(', ') + (notSynced.length > 4 ? `, +${notSynced.length - 4} more` : '');
  return {
    done: false,
    line: s.synced
      ? `${nodes.length - notSynced.length}/${nodes.length} nodes SYNCED on version ${s.latestVersion} (${which})`
      : 'planner has not synced its source yet',
  };
};

/** The rollout of `revision` finishes: completed is success; halted, rolled back or paused is not. */
export function untilRolledOut(revision: number): Check {
  return (s) => {
    const r = (s.config as { rollout?: RolloutState; defaultRevision: number }).rollout;
    if (!r || r.configRevision !== revision) {
      const def = (s.config as { defaultRevision: number }).defaultRevision;
      return {
        done: true,
        ok: def === revision,
        line:
          def === revision
            ? `revision ${revision} is the cluster default`
            : `no rollout of revision ${revision} is in progress`,
      };
    }
    const nodes = fleetRows(s);
    const on = nodes.filter((n) => n.appliedConfigRevision === revision).length;
    const where = `wave ${r.wave + 1}/${r.waves.length}, ${on}/${nodes.length} nodes on revision ${revision}`;
    if (r.status === 'completed')
      return {
        done: true,
        ok: true,
        line: `rollout of revision ${revision} completed: every wave ACKed, it is the cluster default`,
      };
    if (r.status === 'running') return { done: false, line: `rollout of revision ${revision} running: ${where}` };
    const why = r.haltedBy ? `: ${r.haltedBy.node} failed: ${r.haltedBy.error}` : '';
    const gate = (r as { gate?: number }).gate;
    const next =
      r.status !== 'paused'
        ? ''
        : gate !== undefined
          ? ` (wave ${gate} waits: ctl rollout --promote, or ctl rollback)`
          : ' (ctl rollout --resume, or ctl rollback)';
    return { done: true, ok: false, line: `rollout of revision ${revision} ${r.status} at ${where}${why}${next}` };
  };
}

/**
 * Polls /status until `check` says done or `timeoutMs` passes, showing progress on stderr: one
 * line rewritten in place on a terminal, otherwise a new line whenever the progress changes (no
 * escape codes into files and pipes). Returns the final line and whether it succeeded.
 */
export async function waitUntil(
  c: PlannerConnection,
  check: Check,
  timeoutMs: number,
  what: string,
  o: { intervalMs?: number; tty?: boolean } = {},
): Promise<{ ok: boolean; line: string }> {
  const tty = o.tty ?? process.stderr.isTTY === true;
  const start = Date.now();
  let last = '';
  const show = (line: string) => {
    if (tty) process.stderr.write(`\r\x1b[2K${line} [${seconds(Date.now() - start)}]`);
    else if (line !== last) process.stderr.write(`${line}\n`);
    last = line;
  };
  const end = () => {
    if (tty && last) process.stderr.write('\n');
  };
  for (;;) {
    const checked = check(await plannerStatus(c));
    // the line carries node text (a halting node's error): shown on a terminal, escaped
    const r = { ...checked, line: printable(checked.line) };
    if (r.done) {
      end();
      return { ok: r.ok, line: r.line };
    }
    show(r.line);
    if (Date.now() - start >= timeoutMs) {
      end();
      return { ok: false, line: `timed out after ${seconds(timeoutMs)} waiting for ${what}: ${r.line}` };
    }
    await new Promise((res) =>
      setTimeout(res, Math.min(o.intervalMs ?? 500, Math.max(0, timeoutMs - (Date.now() - start)))),
    );
  }
}
