import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { readVerifierFile } from '../../../libs/bus/index.ts';
import { DryRunDataplane } from '../../../libs/dataplane/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { fullGc } from '../../../services/cli/full-gc.ts';
import { heapWarning } from '../../../services/cli/heap-headroom.ts';
import { until } from '../planner/planner-support.ts';
import { oneNodePlannerEachTest } from './one-node-planner.ts';

/**
 * An applier whose heap nears the limit V8 stops it at says so where the operator looks: a node
 * warning (ctl status, the console) and its log, and its metrics carry both figures. The heap
 * statistics are the test's (a real heap that large would be the test's machine's problem); the
 * readings are taken where the applier takes them, after V8's real full collections.
 */
const t = oneNodePlannerEachTest();

describe("an applier's heap near its limit", () => {
  it('is a node warning and a log line from the first full collection past 80 %, cleared once under 70 %; /metrics has both figures', async () => {
    const MB = 1e6;
    const heap = { used: 120 * MB, limit: 259 * MB };
    const logged: { level: number; msg: string }[] = [];
    const svc = await startApplierService({
      node: 'node-1',
      nats: t.env.nats.url,
      mode: 'ipvs',
      dataplane: new DryRunDataplane(),
      heartbeatMs: 100,
      probe: { sample: 0 },
      http: '127.0.0.1:0',
      verifier: readVerifierFile(`${t.env.db}.signing-key.pem.pub`),
      heapStats: () => ({ used_heap_size: heap.used, heap_size_limit: heap.limit }),
      logger: pino(
        { level: 'info' },
        { write: (l: string) => logged.push(JSON.parse(l) as { level: number; msg: string }) },
      ),
    });
    t.stops.push(() => svc.stop());
    const p = t.planner.planner;
    const row = () => p.status().find((n) => n.node === 'node-1');
    await until(() => row()?.status === 'SYNCED' && row()!.heartbeatAt && row(), 10_000, 'node-1 SYNCED');
    fullGc(); // a full collection: the watch reads 120 of 259 MB, nothing to say
    await until(
      async () => (await metric(svc.httpPort!, 'switchboard_applier_heap_live_bytes')) === 120 * MB,
      5_000,
      'live heap exported',
    );
    expect(await metric(svc.httpPort!, 'switchboard_applier_heap_limit_bytes')).toBe(259 * MB);
    expect(row()!.warnings).toEqual([]);

    heap.used = 210 * MB; // 81 %
    fullGc();
    const line = heapWarning({ liveBytes: 210 * MB, limitBytes: 259 * MB }, false)!;
    await until(() => row()!.warnings.length > 0 && row(), 5_000, 'the warning in a heartbeat');
    expect(row()!.warnings).toEqual([line]);
    expect(row()!.status).toBe('SYNCED'); // a warning, not a failure
    expect(logged.filter((l) => l.msg === line).map((l) => l.level)).toEqual([40]); // warn, once

    heap.used = 190 * MB; // 73 %: still warned (no line per collection at the edge)
    fullGc();
    await new Promise((r) => setTimeout(r, 300));
    expect(row()!.warnings).toHaveLength(1);
    heap.used = 150 * MB; // 58 %
    fullGc();
    await until(() => row()!.warnings.length === 0 && row(), 5_000, 'the warning cleared');
    expect(logged.some((l) => l.level === 30 && l.msg.startsWith('heap back to 150 MB'))).toBe(true);
  }, 30_000);
});

async function metric(port: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}
