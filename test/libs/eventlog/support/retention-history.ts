import type { EventLog } from '../../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../../libs/model/index.ts';
import { driveDataAxis, randomHistory, type DrivenVersion } from './random-history.ts';

/**
 * A random history (pins and rollbacks among it) with the planner's periodic checkpoints and an
 * ACK of every version by each of `nodes` nodes (the rows retention removes), on a real log.
 */
export function retentionHistory(
  log: EventLog,
  o: { seed: number; steps: number; checkpointEvery: number; nodes?: number },
): DrivenVersion[] {
  const rev = log.recordConfigRevision({ config: DEFAULT_PROXY_CONFIG, reason: 'initial' }).revision;
  const nodes = Array.from({ length: o.nodes ?? 3 }, (_, i) => `node-${i}`);
  const recorded = driveDataAxis(log, randomHistory({ seed: o.seed, steps: o.steps, pinRate: 0.05 }), {
    checkpointEvery: o.checkpointEvery,
  });
  const latest = log.latestVersion()?.version ?? 0;
  for (let v = 1; v <= latest; v++)
    for (const node of nodes)
      log.recordAck({
        type: 'ACK',
        node,
        version: v,
        configRevision: rev,
        dataHash: log.version(v)!.hash,
        nodeStateHash: 'n'.repeat(64),
        mode: 'ipvs',
        kernelWrites: 1,
        timings: { fetchMs: 1, renderMs: 1, applyMs: 1 },
        at: new Date(Date.parse('2025-01-01T00:00:00Z') + v * 1000).toISOString(),
      });
  return recorded;
}
