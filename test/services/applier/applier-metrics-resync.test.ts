// probe23 D1: a resync whose only writes ended drains (ipvs mode deletes a removed TCP real server
// once its connections closed) is counted clean, not as a drift repair.
import { describe, expect, it } from 'vitest';
import { ApplierMetrics } from '../../../services/applier/applier-metrics.ts';

async function outcomes(m: ApplierMetrics): Promise<Record<string, number>> {
  const c = await m.registry.getSingleMetric('switchboard_applier_resyncs_total')!.get();
  return Object.fromEntries(c.values.map((v) => [String(v.labels.outcome), v.value]));
}

describe('switchboard_applier_resyncs_total', () => {
  it('counts writes beyond the scheduled ones as a repair, scheduled-only writes as clean', async () => {
    const m = new ApplierMetrics();
    const resync = { type: 'resync', trigger: 'periodic', verified: true, notes: [] } as const;
    m.observe({ ...resync, kernelWrites: 1, scheduledWrites: 1 });
    m.observe({ ...resync, kernelWrites: 3, scheduledWrites: 1 });
    m.observe({ ...resync, kernelWrites: 2 });
    m.observe({ ...resync, kernelWrites: 0 });
    expect(await outcomes(m)).toEqual({ clean: 2, repaired: 2, failed: 0, yielded: 0 });
  });

  it('counts a resync that gave way to an apply apart: it compared nothing', async () => {
    const m = new ApplierMetrics();
    m.observe({ type: 'resync-yielded', trigger: 'periodic', afterMs: 120 });
    m.observe({ type: 'resync', trigger: 'periodic', verified: true, notes: [], kernelWrites: 0 });
    expect(await outcomes(m)).toEqual({ clean: 1, repaired: 0, failed: 0, yielded: 1 });
  });
});
