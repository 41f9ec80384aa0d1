// The planner queues each watch event prepared (its log row text and its reading into the model,
// DataAxis.prepare) as it arrives, so a list page's raw objects are garbage once the page is read,
// not held until their batch of 2 000 is appended. An event that cannot be prepared is queued as
// it came: its batch's append fails and is retried, as before; the sink never throws.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventLog } from '../../../libs/eventlog/index.ts';
import type { KubeEvent, KubeEventSink, RawKubeObject } from '../../../libs/kube/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import type { EventSource } from '../../../services/planner/event-source.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { plannerEnv, until, type PlannerEnv } from './planner-support.ts';

let env: PlannerEnv;
const stops: (() => unknown)[] = [];
beforeEach(async () => {
  env = await plannerEnv();
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of stops.splice(0).reverse()) await Promise.resolve(s()).catch(() => undefined);
  await env.cleanup();
});

const service = (name: string, ip: string, rv: number): KubeEvent => ({
  kind: 'Service',
  type: 'ADDED',
  resourceVersion: String(rv),
  relist: true,
  object: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: String(rv) },
    spec: { clusterIP: ip, ports: [{ port: 80, protocol: 'TCP' }] },
  } as RawKubeObject,
});

/** A planner whose source delivers `events` (each sink call awaited, as the informer does), then is synced. */
async function plannerWith(events: KubeEvent[]): Promise<{ planner: Planner; log: EventLog; sinkErrors: unknown[] }> {
  const log = await EventLog.open({ file: env.db });
  stops.push(() => log.close());
  const bus = await NatsPlannerBus.open({ nc: env.nc });
  stops.push(() => bus.close());
  const sinkErrors: unknown[] = [];
  let delivered!: () => void;
  const synced = new Promise<void>((r) => (delivered = r));
  const source = (sink: KubeEventSink): EventSource => ({
    origin: undefined,
    synced,
    start: async () => {
      for (const e of events) await Promise.resolve(sink(e)).catch((err: unknown) => sinkErrors.push(err));
      delivered();
    },
    stop: async () => {},
    health: () => ({}),
    problem: () => undefined,
  });
  const planner = new Planner({ log, bus, initialConfig: DEFAULT_PROXY_CONFIG, debounceMs: 10, source });
  stops.push(() => planner.stop());
  await planner.start();
  return { planner, log, sinkErrors };
}

describe('the planner queues prepared events', () => {
  it('prepares each event as it arrives (one prepare per event), and logs and publishes them as before', async () => {
    const prepare = vi.spyOn(DataAxis.prototype, 'prepare');
    const events = Array.from({ length: 30 }, (_, i) => service(`s${i}`, `10.96.0.${i + 1}`, i + 1));
    const { planner, log, sinkErrors } = await plannerWith(events);
    await planner.synced;
    expect(prepare).toHaveBeenCalledTimes(30);
    expect(sinkErrors).toEqual([]);
    expect(log.events().map((e) => e.name)).toEqual(events.map((e) => e.object.metadata.name));
    expect(log.latestVersion()?.version).toBe(1);
    expect(planner.lastError).toBeUndefined();
  });

  it('an event that cannot be prepared is queued as it came: the sink does not throw, its batch fails to append and is retried, nothing of it is written', async () => {
    const bad = service('bad', '10.96.0.9', 2);
    // a field the log keeps (the object's projection) that cannot be serialised
    (bad.object as unknown as { spec: { ports: unknown } }).spec.ports = {
      toJSON: () => {
        throw new Error('object cannot be serialised');
      },
    };
    const ingest = vi.spyOn(DataAxis.prototype, 'ingest');
    const { planner, log, sinkErrors } = await plannerWith([service('good', '10.96.0.1', 1), bad]);
    await until(() => ingest.mock.calls.length >= 2, 5000, 'a retried append'); // the batcher retries after 1 s
    expect(sinkErrors).toEqual([]);
    expect(planner.failure('append')).toMatch(/object cannot be serialised/);
    expect(ingest.mock.calls.at(-1)![0]).toHaveLength(2); // the whole batch again, the bad event raw
    expect(log.lastSeq()).toBe(0); // the batch is written whole or not at all
  });
});
