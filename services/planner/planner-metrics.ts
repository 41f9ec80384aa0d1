import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PlannerHooks } from './planner.ts';
import type { GroupView } from './planner-group.ts';

/** Prometheus metrics for one planner, in their own registry (tests run several planners). */
export function plannerMetrics(
  o: { sourceProblem?: () => string | undefined; group?: () => GroupView | undefined } = {},
): {
  registry: Registry;
  hooks: PlannerHooks;
  versionGauge: Gauge;
  /** Rows online retention removed from the event log, by table (events, acks, checkpoints). */
  rowsCompacted: Counter<'table'>;
} {
  const registry = new Registry();
  const sourceProblem = o.sourceProblem;
  const group = o.group;
  new Gauge({
    name: 'switchboard_planner_leader',
    help: '1 while this planner leads its group, 0 while it follows',
    registers: [registry],
    collect() {
      this.set(group?.()?.self.leader ? 1 : 0);
    },
  });
  new Gauge({
    name: 'switchboard_planner_term',
    help: "The group's leadership term as this planner knows it (its own while it leads)",
    registers: [registry],
    collect() {
      this.set(group?.()?.self.term ?? 0);
    },
  });
  new Gauge({
    name: 'switchboard_planner_replication_lag_rows',
    help: "Rows of the group's replicated log not yet applied to this planner's file (-1: no replicated log)",
    registers: [registry],
    collect() {
      this.set(group?.()?.lagRows ?? -1);
    },
  });
  new Gauge({
    name: 'switchboard_planner_source_up',
    help: '1 while the event source (informers or manifests scans) works, 0 while it fails',
    registers: [registry],
    collect() {
      this.set(sourceProblem?.() === undefined ? 1 : 0);
    },
  });
  const events = new Counter({
    name: 'switchboard_planner_events_total',
    help: 'Watch events appended to the event log',
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'switchboard_planner_rejected_objects_total',
    help: 'Objects rejected as malformed',
    registers: [registry],
  });
  const versions = new Counter({
    name: 'switchboard_planner_versions_published_total',
    help: 'Data versions published',
    registers: [registry],
  });
  const errors = new Counter({
    name: 'switchboard_planner_errors_total',
    help: 'Planner errors by place',
    labelNames: ['where'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'switchboard_planner_publish_seconds',
    help: 'Time to publish one version on the bus',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const versionGauge = new Gauge({
    name: 'switchboard_planner_latest_version',
    help: 'Latest published data version',
    registers: [registry],
  });
  const rowsCompacted = new Counter({
    name: 'switchboard_planner_log_rows_compacted_total',
    help: "Rows the planner's online retention (--retain-versions, --retain-age) removed from its event log, by table",
    labelNames: ['table'],
    registers: [registry],
  });
  const hooks: PlannerHooks = {
    onEvents: (n) => events.inc(n),
    onRejected: () => rejected.inc(),
    onVersion: (v, ms) => {
      versions.inc();
      latency.observe(ms / 1000);
      versionGauge.set(v);
    },
    onError: (where) => errors.inc({ where }),
  };
  return { registry, hooks, versionGauge, rowsCompacted };
}
