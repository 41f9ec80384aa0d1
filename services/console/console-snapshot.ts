import { rolloutView, summarizeStatus, unknownFieldsWarnings } from '../../libs/control/index.ts';
import type { EventLog } from '../../libs/eventlog/index.ts';
import { defaultAgainWords, haltWords } from '../cli/operation-sentences.ts';
import { groupStatus, type HttpApiOptions } from '../planner/http-api.ts';
import type { Planner } from '../planner/planner.ts';

/** The planner's group as the API sees it (self, leader, members); undefined outside a group. */
export type GroupSource = NonNullable<HttpApiOptions['group']>;

/**
 * Everything the console's live views show, in one value: the node grid (rows from the planner's
 * one status function), the config rollout with each wave node's health verdict, the version
 * timeline with reasons, and the planner's group (who leads, in which term, the members).
 * `clocks` are the running wave's and bake's elapsed times as the planner measures them (its
 * monotonic clock, libs/control/rollout-clock.ts), as of this snapshot: the page counts on from
 * them with its own monotonic clock, never from the start stamps and the browser's wall clock
 * (which may be hours off the planner's, or step). They are left out of what says whether the
 * snapshot changed (snapshotText), so the live stream still pushes only when something happened.
 */
export function consoleSnapshot(p: Planner, log: EventLog, group?: GroupSource) {
  const nodes = p.status();
  const latest = p.data.latest();
  const versions = log.versions({ from: Math.max(1, (latest?.version ?? 0) - 99) });
  const rollout = rolloutView(p.config.state, Date.now(), nodes, p.config.elapsed());
  return {
    latestVersion: latest?.version ?? 0,
    pinned: p.data.pin ?? null,
    config: p.config.state,
    rollout: clockless(rollout),
    // The words `ctl rollout status` says for the node that stopped the rollout (probe11 K8: the
    // page said `rolled-back by node-a` for a rollout node-a halted and an operator rolled back).
    halt: (p.config.state.rollout && haltWords(p.config.state.rollout)) ?? null,
    // ctl's line for a rolled-back revision a later rollback made the default again (probe11 K8):
    // the page showed `status rolled-back` for the revision in force, with nothing more.
    defaultAgain: defaultAgainWords(p.config.state.rollout, p.config.state.defaultRevision) ?? null,
    summary: summarizeStatus(nodes),
    nodes,
    // ctl status's WARNING lines for appliers that do not know fields of their targets (probe15 U7)
    unknownFields: unknownFieldsWarnings(nodes),
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
    group: groupPanel(group?.()),
    // Last: snapshotText leaves it out of the text that says whether anything changed.
    clocks: rollout && { waveElapsedMs: rollout.waveElapsedMs, bakeElapsedMs: rollout.bakeElapsedMs },
  };
}

export type ConsoleSnapshot = ReturnType<typeof consoleSnapshot>;

/**
 * The snapshot as the event stream sends it (`text`), and the same without its clocks (`changed`):
 * the stream pushes only when `changed` differs from the last one sent, so the clocks, which move
 * all the time, ride along with a change instead of making one.
 */
export function snapshotText(s: ConsoleSnapshot): { readonly changed: string; readonly text: string } {
  const { clocks, ...rest } = s;
  const changed = JSON.stringify(rest);
  return { changed, text: `${changed.slice(0, -1)},"clocks":${JSON.stringify(clocks)}}` };
}

/**
 * The group as GET /status says it (self, leader, lastLeader, members) with cutOff, for the page's
 * group line, its no-leader banner and its follower note on the write buttons (writes go to the
 * leader's API: a follower answers them 307). Without the members' announcement times: they change
 * every beat, and the stream would push the whole snapshot for nothing.
 */
function groupPanel(g: ReturnType<GroupSource>) {
  if (!g) return null;
  const s = groupStatus(g);
  return {
    name: s.group,
    self: s.self,
    leader: s.leader,
    lastLeader: s.lastLeader ?? null,
    cutOff: g.cutOff ?? null,
    members: s.planners.map(({ at: _at, ...m }) => m),
  };
}

function clockless<T extends { waveElapsedMs: unknown; bakeElapsedMs: unknown }>(
  v: T | null,
): Omit<T, 'waveElapsedMs' | 'bakeElapsedMs'> | null {
  if (!v) return null;
  const { waveElapsedMs: _w, bakeElapsedMs: _b, ...rest } = v;
  return rest;
}
