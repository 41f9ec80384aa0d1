import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SessionEvent } from '../../libs/applier/index.ts';
import type { HeapReading } from '../cli/heap-headroom.ts';

/** Prometheus metrics of one applier, fed from session events. */
export class ApplierMetrics {
  readonly registry = new Registry();
  private readonly appliedVersion = new Gauge({
    name: 'switchboard_applier_applied_version',
    help: 'Data version programmed',
    registers: [this.registry],
  });
  private readonly appliedConfig = new Gauge({
    name: 'switchboard_applier_applied_config_revision',
    help: 'Config revision programmed',
    registers: [this.registry],
  });
  private readonly targetVersion = new Gauge({
    name: 'switchboard_applier_target_version',
    help: 'Data version targeted',
    registers: [this.registry],
  });
  private readonly resyncs = new Counter({
    name: 'switchboard_applier_resyncs_total',
    help: 'periodic resyncs by outcome: clean (kernel as applied), repaired (drift found and repaired), failed, yielded (gave way to an apply before writing; it runs again)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  private readonly acks = new Counter({
    name: 'switchboard_applier_acks_total',
    help: 'ACKs sent',
    labelNames: ['path', 'skipped'],
    registers: [this.registry],
  });
  private readonly nacks = new Counter({
    name: 'switchboard_applier_nacks_total',
    help: 'NACKs sent',
    registers: [this.registry],
  });
  private readonly errors = new Counter({
    name: 'switchboard_applier_errors_total',
    help: 'Bus errors seen',
    registers: [this.registry],
  });
  private readonly fetchedBytes = new Counter({
    name: 'switchboard_applier_fetched_bytes_total',
    help: 'Artifact bytes fetched',
    registers: [this.registry],
  });
  private readonly patchedServices = new Counter({
    name: 'switchboard_applier_patched_services_total',
    help: "Large services rebuilt from a target notice's patch instead of fetched or carried whole",
    registers: [this.registry],
  });
  private readonly kernelWrites = new Counter({
    name: 'switchboard_applier_kernel_writes_total',
    help: 'Kernel writes performed',
    registers: [this.registry],
  });
  private readonly applySeconds = new Histogram({
    name: 'switchboard_applier_apply_seconds',
    help: 'Fetch+render+apply time per version',
    buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10],
    registers: [this.registry],
  });
  private readonly rejected = new Counter({
    name: 'switchboard_applier_rejected_messages_total',
    help: "Bus messages dropped as not the planner's (unsigned, badly signed, malformed, foreign); kind=patch: a notice's patch not taken (the version fetched whole)",
    labelNames: ['kind'],
    registers: [this.registry],
  });
  private readonly verdict = new Gauge({
    name: 'switchboard_applier_health_verdict',
    help: "1 for the node's current health verdict (state read back + data-path probe), 0 for the others",
    labelNames: ['verdict'],
    registers: [this.registry],
  });
  private readonly probed = new Counter({
    name: 'switchboard_applier_probe_targets_total',
    help: 'Virtual servers probed, by result: ok, failed (through the dataplane), unreachable (endpoint did not answer directly)',
    labelNames: ['result'],
    registers: [this.registry],
  });
  private readonly probeLatency = new Histogram({
    name: 'switchboard_applier_probe_connect_seconds',
    help: 'Median connect time through the dataplane per probe round',
    buckets: [0.0005, 0.002, 0.01, 0.05, 0.2, 1],
    registers: [this.registry],
  });
  private readonly connected = new Gauge({
    name: 'switchboard_applier_nats_connected',
    help: '1 when connected to NATS',
    registers: [this.registry],
  });

  private readonly healthCheckPorts = new Gauge({
    name: 'switchboard_applier_health_check_node_ports',
    help: "ETP=Local Services' health check node ports: serving (listening), failed (could not listen: the load balancer sees this node as down)",
    labelNames: ['state'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.connected.set(0);
    for (const kind of ['target', 'artifact', 'config']) this.rejected.inc({ kind }, 0);
    for (const result of ['ok', 'failed', 'unreachable']) this.probed.inc({ result }, 0);
    for (const outcome of ['clean', 'repaired', 'failed', 'yielded']) this.resyncs.inc({ outcome }, 0);
    this.healthCheckNodePorts(0, 0);
  }

  /** Exports the heap after V8's last full collection and its limit, read at each scrape. */
  heapFrom(read: () => HeapReading | undefined): void {
    new Gauge({
      name: 'switchboard_applier_heap_live_bytes',
      help: "V8's used heap right after its last full collection: what the applier keeps (0 before the first)",
      registers: [this.registry],
      collect() {
        this.set(read()?.liveBytes ?? 0);
      },
    });
    new Gauge({
      name: 'switchboard_applier_heap_limit_bytes',
      help: "V8's heap limit (Node's: half the container's memory limit, at most ~2 GiB below 16 GiB; or --max-old-space-size): at it the applier stops",
      registers: [this.registry],
      collect() {
        this.set(read()?.limitBytes ?? 0);
      },
    });
  }

  healthCheckNodePorts(serving: number, failed: number): void {
    this.healthCheckPorts.set({ state: 'serving' }, serving);
    this.healthCheckPorts.set({ state: 'failed' }, failed);
  }

  observe(e: SessionEvent): void {
    switch (e.type) {
      case 'resync':
        this.resyncs.inc({
          outcome: e.error || !e.verified ? 'failed' : e.kernelWrites > (e.scheduledWrites ?? 0) ? 'repaired' : 'clean',
        });
        break;
      case 'resync-yielded':
        this.resyncs.inc({ outcome: 'yielded' });
        break;
      case 'target':
        this.targetVersion.set(e.target.version);
        break;
      case 'ack': {
        this.appliedVersion.set(e.ack.version);
        this.appliedConfig.set(e.ack.configRevision);
        this.acks.inc({ path: e.path, skipped: String(e.skipped) });
        this.fetchedBytes.inc(e.bytes);
        this.patchedServices.inc(e.patched);
        this.kernelWrites.inc(e.ack.kernelWrites);
        const t = e.ack.timings;
        this.applySeconds.observe((t.fetchMs + t.renderMs + t.applyMs) / 1000);
        break;
      }
      case 'verdict': {
        for (const v of ['healthy', 'unhealthy', 'unprobed'])
          this.verdict.set({ verdict: v }, v === e.verdict.verdict ? 1 : 0);
        const p = e.verdict.probe;
        if (p) {
          this.probed.inc({ result: 'ok' }, p.succeeded);
          this.probed.inc({ result: 'failed' }, p.failed);
          this.probed.inc({ result: 'unreachable' }, p.unreachable);
          if (p.latencyMs) this.probeLatency.observe(p.latencyMs.p50 / 1000);
        }
        break;
      }
      case 'nack':
        this.nacks.inc();
        break;
      case 'error':
        this.errors.inc();
        break;
      case 'rejected':
        this.rejected.inc({ kind: e.kind });
        break;
      case 'connection':
        if (e.status === 'disconnect') this.connected.set(0);
        if (e.status === 'reconnect') this.connected.set(1);
        break;
    }
  }
}
