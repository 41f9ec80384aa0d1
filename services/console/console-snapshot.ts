import { rolloutView, summarizeStatus } from '../../libs/control/index.ts';
import type { EventLog } from '../../libs/eventlog/index.ts';
import type { Planner } from '../planner/planner.ts';

/**
 * Everything the console's live views show, in one value: the node grid (rows from the planner's
 * one status function), the config rollout with each wave node's health verdict, and the version
 * timeline with reasons. The rollout's clocks are left to the page (from the start times), so the
 * snapshot changes only when something happened and the live stream pushes only then.
 */
export function consoleSnapshot(p: Planner, log: EventLog) {
  const nodes = p.status();
  const latest = p.data.latest();
  const versions = log.versions({ from: Math.max(1, (latest?.version ?? 0) - 99) });
  return {
    latestVersion: latest?.version ?? 0,
    pinned: p.data.pin ?? null,
    config: p.config.state,
    rollout: clockless(rolloutView(p.config.state, Date.now(), nodes)),
    summary: summarizeStatus(nodes),
    nodes,
    versions: versions.map((v) => ({
      version: v.version,
      hash: v.hash,
      reason: v.reason,
      createdAt: v.createdAt,
      contentOf: v.contentOf ?? null,
    })),
    lastError: p.lastError ?? null,
    // The planner's own health, as `ctl status`'s header says it: a fleet can be all SYNCED on
    // stale data while the source fails, so the page must say so too.
    synced: p.isSynced,
    sourceError: p.sourceProblem() ?? null,
    rejectedTotal: p.data.rejectedCount + p.sourceRejections.length + p.vipConflicts().length,
  };
}

export type ConsoleSnapshot = ReturnType<typeof consoleSnapshot>;

function clockless<T extends { waveElapsedMs: unknown; bakeElapsedMs: unknown }>(
  v: T | null,
): Omit<T, 'waveElapsedMs' | 'bakeElapsedMs'> | null {
  if (!v) return null;
  const { waveElapsedMs: _w, bakeElapsedMs: _b, ...rest } = v;
  return rest;
}
