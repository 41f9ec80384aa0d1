/**
 * What the benches that measure the planner itself (not NATS) run it with: a real Planner on a
 * real SQLite log and a manifests directory, and a stand-in for its bus in memory: publishing
 * only records the version, targets and config revisions go nowhere, and the ACK handler the
 * planner listens with is kept so the bench can hand it reports directly.
 */
import type { EventLog } from '../../libs/eventlog/index.ts';
import { type ManifestDecoder, ManifestsSource } from '../../libs/kube/index.ts';
import { type AckOrNack, DEFAULT_PROXY_CONFIG } from '../../libs/model/index.ts';
import { knownObjectsFromLog, manifestsSource } from '../../services/planner/event-source.ts';
import { Planner, type PlannerOptions } from '../../services/planner/planner.ts';
import type { PlannerBus } from '../../services/planner/planner-bus.ts';

/** A planner reading `manifests` (debounced 10 ms, no checkpoints), its log `log`, its bus `bus`. */
export function manifestsPlanner(o: {
  log: EventLog;
  bus: PlannerBus;
  manifests: string;
  decoder?: ManifestDecoder;
  hooks?: PlannerOptions['hooks'];
}): Planner {
  const { log, manifests, decoder } = o;
  return new Planner({
    log,
    bus: o.bus,
    initialConfig: DEFAULT_PROXY_CONFIG,
    debounceMs: 10,
    checkpointEvery: 0,
    ...(o.hooks ? { hooks: o.hooks } : {}),
    source: (sink, hooks) =>
      manifestsSource(
        (m) =>
          new ManifestsSource({
            dir: manifests,
            ...m,
            known: knownObjectsFromLog(log),
            debounceMs: 10,
            ...(decoder ? { decoder } : {}),
          }),
        sink,
        hooks,
      ),
  });
}

export interface MemoryPlannerBus {
  readonly bus: PlannerBus;
  /** The planner's onAck, once it listens (a leader's: Planner.start). */
  hear(a: AckOrNack): unknown;
}

export function memoryPlannerBus(): MemoryPlannerBus {
  let onAck: ((a: AckOrNack) => unknown) | undefined;
  let published = 0;
  const bus: PlannerBus = {
    lastPublishedVersion: () => published,
    publishedHash: async () => undefined,
    publish: async (a) => {
      published = a.version;
    },
    publishBase: async (h) => {
      published = h.version;
    },
    putConfigRevision: async () => {},
    setDefaultTarget: async () => {},
    setNodeTarget: async () => {},
    listen: (h) => {
      onAck = h.onAck;
    },
    close: async () => {},
  };
  return {
    bus,
    hear: (a) => {
      if (!onAck) throw new Error('the planner does not listen yet');
      return onAck(a);
    },
  };
}

/** Polls `ok` every few ms until it holds; throws naming `what` after `ms`. */
export async function until(ok: () => boolean, what: string, ms: number): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
