import { summarizeStatus } from '../../libs/control/index.ts';
import type { EventLog } from '../../libs/eventlog/index.ts';
import type { Planner } from '../planner/planner.ts';

/**
 * Everything the console's live views show, in one value: the node grid (rows from the planner's
 * one status function), the config rollout, and the version timeline with reasons.
 */
export function consoleSnapshot(p: Planner, log: EventLog) {
  const nodes = p.status();
  const latest = p.data.latest();
  const versions = log.versions({ from: Math.max(1, (latest?.version ?? 0) - 99) });
  return {
    latestVersion: latest?.version ?? 0,
    pinned: p.data.pin ?? null,
    config: p.config.state,
    summary: summarizeStatus(nodes),
    nodes,
    versions: versions.map((v) => ({ version: v.version, hash: v.hash, reason: v.reason, createdAt: v.createdAt, contentOf: v.contentOf ?? null })),
    lastError: p.lastError ?? null,
  };
}

export type ConsoleSnapshot = ReturnType<typeof consoleSnapshot>;
