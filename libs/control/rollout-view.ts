import type { ConfigTargetState } from './rollout.ts';
import { DEFAULT_WAVE_POLICY } from './wave-policy.ts';

/** The rollout as GET /status reports it: the status word, the wave (1-based) and its clocks at `nowMs`. */
export function rolloutView(st: ConfigTargetState, nowMs: number) {
  const r = st.rollout;
  if (!r) return null;
  const policy = r.policy ?? DEFAULT_WAVE_POLICY;
  const running = r.status === 'running';
  const since = (iso: string | undefined) => (running && iso !== undefined ? Math.max(0, nowMs - Date.parse(iso)) : null);
  return {
    status: r.status, configRevision: r.configRevision, fromRevision: r.fromRevision,
    wave: r.wave + 1, waves: r.waves.length, nodes: r.waves[r.wave]!.length, fleet: r.waves[r.waves.length - 1]!.length,
    policy, waveStartedAt: r.waveStartedAt ?? r.startedAt, waveElapsedMs: since(r.waveStartedAt ?? r.startedAt),
    bakeStartedAt: r.bakeStartedAt ?? null, bakeElapsedMs: since(r.bakeStartedAt),
    waitingForPromote: r.gate ?? null, failed: r.failed ?? [], haltedBy: r.haltedBy ?? null, updatedAt: r.updatedAt,
  };
}
