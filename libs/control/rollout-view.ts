import type { ConfigTargetState } from './rollout.ts';
import type { NodeStatusRow } from './node-status.ts';
import { DEFAULT_WAVE_POLICY } from './wave-policy.ts';
import type { RolloutElapsed } from './rollout-clock.ts';

/**
 * The rollout as GET /status reports it: the status word, the wave (1-based) and its clocks at
 * `nowMs`, and for each node of the wave (`rows`: the status rows) its word, the revision it
 * runs, its health verdict and probe results (verdict null: the node sent none). `elapsed`: the
 * durations the planner measures monotonically (what its gates go by); without it, from the wall
 * stamps and `nowMs`.
 */
export function rolloutView(
  st: ConfigTargetState,
  nowMs: number,
  rows: readonly NodeStatusRow[] = [],
  elapsed?: RolloutElapsed,
) {
  const r = st.rollout;
  if (!r) return null;
  const policy = r.policy ?? DEFAULT_WAVE_POLICY;
  const running = r.status === 'running';
  const byNode = new Map(rows.map((row) => [row.node, row]));
  const since = (iso: string | undefined) =>
    running && iso !== undefined ? Math.max(0, nowMs - Date.parse(iso)) : null;
  return {
    status: r.status,
    configRevision: r.configRevision,
    fromRevision: r.fromRevision,
    wave: r.wave + 1,
    waves: r.waves.length,
    nodes: r.waves[r.wave]!.length,
    fleet: r.waves[r.waves.length - 1]!.length,
    policy,
    waveStartedAt: r.waveStartedAt ?? r.startedAt,
    waveElapsedMs: running && elapsed ? elapsed.waveMs : since(r.waveStartedAt ?? r.startedAt),
    bakeStartedAt: r.bakeStartedAt ?? null,
    bakeElapsedMs: running && elapsed ? (elapsed.bakeMs ?? null) : since(r.bakeStartedAt),
    waitingForPromote: r.gate ?? null,
    failed: r.failed ?? [],
    haltedBy: r.haltedBy ?? null,
    updatedAt: r.updatedAt,
    // A wave node without a status row left the fleet (its Node is gone and it is silent): LEFT,
    // not UNKNOWN, so a wave waiting on a canary that left says so (probe20 P20-5).
    waveNodes: r.waves[r.wave]!.map((node) => {
      const row = byNode.get(node);
      const h = row?.health ?? null;
      return {
        node,
        status: row?.status ?? ('LEFT' as const),
        appliedConfigRevision: row?.appliedConfigRevision ?? null,
        verdict: h?.verdict ?? null,
        verdictRevision: h?.configRevision ?? null,
        reason: h?.reason ?? null,
        probe: h?.probe ?? null,
        injected: h?.injected ?? false,
        verdictAt: h?.at ?? null,
      };
    }),
  };
}
