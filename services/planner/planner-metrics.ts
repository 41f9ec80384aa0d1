import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { summarizeStatus } from '../../libs/control/index.ts';
import type { LogStorage } from '../../libs/eventlog/index.ts';
import type { NodeStatusWord } from '../../libs/model/index.ts';
import type { HeapReading } from '../cli/heap-headroom.ts';
import { INVALID_REASONS } from './invalid-reports.ts';
import type { PlannerHooks } from './planner.ts';
import type { GroupView } from './planner-group.ts';

/** What the planner's scrape-time gauges read; each is called by a collect() callback, never on a hot path. */
export interface PlannerMetricSources {
  sourceProblem?: () => string | undefined;
  group?: () => GroupView | undefined;
  /** The event log's disk use (logStorage: a few stat calls); undefined before the log is open. */
  storage?: () => Pick<LogStorage, 'bytes' | 'walBytes' | 'freeBytes'> | undefined;
  /** The oldest version the log still rebuilds (null: none) and its oldest event seq (retentionStatus). */
  retained?: () => { oldestVersion: number | null; oldestSeq: number } | undefined;
  /** The node rows /status lists (their words are counted as its `summary` counts them). */
  nodes?: () => readonly { status: NodeStatusWord }[] | undefined;
  /** The heap after V8's last full collection and its limit (services/cli/heap-headroom.ts). */
  heap?: () => HeapReading | undefined;
  /** JetStream streams whose size is exported (read at most every STREAM_INFO_MAX_AGE_MS). */
  streams?: { nc: () => NatsConnection | undefined; names: () => readonly string[] };
}

/** Prometheus metrics for one planner, in their own registry (tests run several planners). */
export function plannerMetrics(sources: PlannerMetricSources = {}): {
  registry: Registry;
  hooks: PlannerHooks;
  versionGauge: Gauge;
  /** Rows online retention removed from the event log, by table (events, acks, checkpoints). */
  rowsCompacted: Counter<'table'>;
  /** Adds sources that exist only later (the log once opened, the bus once connected). */
  attach(more: PlannerMetricSources): void;
} {
  const o: PlannerMetricSources = { ...sources };
  const registry = new Registry();
  // process_* and nodejs_* (CPU, memory, file descriptors, event loop lag, GC) as the applier has.
  collectDefaultMetrics({ register: registry });
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
  logGauges(registry, o);
  // probe10 H2: node only when the planner knows it ('' otherwise), reason one of a fixed few
  const invalid = new Counter({
    name: 'switchboard_planner_invalid_reports_total',
    help: 'ACKs, NACKs and heartbeats dropped as not valid, by node (known nodes only) and reason',
    labelNames: ['node', 'reason'],
    registers: [registry],
  });
  const hooks: PlannerHooks = {
    onInvalidReport: (node, reason) => invalid.inc({ node: node ?? '', reason }),
    // a departed node's series go with it: node names churn (autoscaling), series must not pile up (probe21 P21-5)
    onNodeForgotten: (node) => {
      for (const reason of INVALID_REASONS) invalid.remove({ node, reason });
    },
    onEvents: (n) => events.inc(n),
    onRejected: () => rejected.inc(),
    onVersion: (v, ms) => {
      versions.inc();
      latency.observe(ms / 1000);
      versionGauge.set(v);
    },
    onError: (where) => errors.inc({ where }),
  };
  return { registry, hooks, versionGauge, rowsCompacted, attach: (more) => Object.assign(o, more) };
}

/** Gauges read at scrape time: the log's disk use and retained range, nodes by status, stream sizes. */
function logGauges(registry: Registry, o: PlannerMetricSources): void {
  const gauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read() ?? 0);
      },
    });
  gauge(
    'switchboard_planner_log_file_bytes',
    "The event log's file with its WAL and shared-memory files, in bytes",
    () => o.storage?.()?.bytes,
  );
  gauge(
    'switchboard_planner_log_wal_bytes',
    "The event log's WAL, in bytes (it keeps its high-water mark until a checkpoint truncates it)",
    () => o.storage?.()?.walBytes,
  );
  gauge(
    'switchboard_planner_log_fs_free_bytes',
    "Bytes the planner may still write on the event log's filesystem (statfs: available blocks)",
    () => o.storage?.()?.freeBytes,
  );
  gauge(
    'switchboard_planner_heap_live_bytes',
    "V8's used heap right after its last full collection: what the planner keeps (0 before the first)",
    () => o.heap?.()?.liveBytes,
  );
  gauge(
    'switchboard_planner_heap_limit_bytes',
    "V8's heap limit (Node's: half the container's memory limit, at most ~2 GiB below 16 GiB; or --max-old-space-size): at it the planner stops",
    () => o.heap?.()?.limitBytes,
  );
  gauge(
    'switchboard_planner_log_oldest_version',
    'Oldest data version the event log still rebuilds (retention moves it up; 0: none)',
    () => o.retained?.()?.oldestVersion ?? undefined,
  );
  gauge(
    'switchboard_planner_log_oldest_seq',
    'Oldest watch event seq the event log keeps (retention moves it up)',
    () => o.retained?.()?.oldestSeq,
  );
  new Gauge({
    name: 'switchboard_planner_nodes',
    help: 'Nodes by status word (SYNCED, APPLYING, STALE, ERROR, UNKNOWN), as /status summary counts them',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      const rows = o.nodes?.() ?? [];
      for (const [status, n] of Object.entries(summarizeStatus(rows))) this.set({ status }, n);
    },
  });
  const stats = streamStats(
    () => o.streams?.nc(),
    () => o.streams?.names() ?? [],
  );
  new Gauge({
    name: 'switchboard_planner_stream_bytes',
    help: "Bytes stored in the group's JetStream streams (versions, replicated log), read at most every 30 s",
    labelNames: ['stream'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [stream, s] of await stats()) this.set({ stream }, s.bytes);
    },
  });
  new Gauge({
    name: 'switchboard_planner_stream_messages',
    help: "Messages stored in the group's JetStream streams (versions, replicated log), read at most every 30 s",
    labelNames: ['stream'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [stream, s] of await stats()) this.set({ stream }, s.messages);
    },
  });
}

/** How old a stream's size may be on a scrape: each read is a JetStream API request per stream. */
export const STREAM_INFO_MAX_AGE_MS = 30_000;
/** A scrape waits at most this long for a fresh read (NATS away); it shows the last one meanwhile. */
const STREAM_INFO_WAIT_MS = 1_000;

type StreamStats = ReadonlyMap<string, { bytes: number; messages: number }>;

/**
 * Stream sizes read from JetStream (STREAM.INFO) at most every STREAM_INFO_MAX_AGE_MS, shared by
 * both gauges and all scrapes; a stream that cannot be read (absent, NATS away) is left out.
 */
function streamStats(nc: () => NatsConnection | undefined, names: () => readonly string[]): () => Promise<StreamStats> {
  let last: { at: number; stats: StreamStats } | undefined;
  let reading: Promise<void> | undefined;
  const read = async () => {
    const c = nc();
    if (!c) return;
    const jsm = await jetstreamManager(c, { checkAPI: false });
    const stats = new Map<string, { bytes: number; messages: number }>();
    for (const name of names()) {
      const info = await jsm.streams.info(name).catch(() => undefined);
      if (info) stats.set(name, { bytes: info.state.bytes, messages: info.state.messages });
    }
    last = { at: performance.now(), stats };
  };
  return async () => {
    if (!last || performance.now() - last.at > STREAM_INFO_MAX_AGE_MS) {
      reading ??= read()
        .catch(() => {})
        .finally(() => {
          reading = undefined;
        });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([reading, new Promise((r) => (timer = setTimeout(r, STREAM_INFO_WAIT_MS)))]);
      clearTimeout(timer);
    }
    return last?.stats ?? new Map();
  };
}
