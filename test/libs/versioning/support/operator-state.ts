import type { EventLog } from '../../../../libs/eventlog/index.ts';
import { ConfigAxis, DataAxis } from '../../../../libs/versioning/index.ts';

/** What a restarted planner would hold: pin, config state, and the versions/revisions they refer to. */
export function operatorState(log: EventLog) {
  const data = DataAxis.restore(log);
  const config = ConfigAxis.restore(log, { mode: 'ipvs' } as Parameters<typeof ConfigAxis.restore>[1]);
  const latest = log.latestVersion();
  return {
    pin: data.pin ?? null,
    latestVersion: latest?.version ?? 0,
    latestContentOf: latest?.contentOf ?? null,
    publishedHash: data.publishedHash(),
    configState: config.state,
    latestConfigRevision: log.latestConfigRevision()?.revision ?? 0,
  };
}
