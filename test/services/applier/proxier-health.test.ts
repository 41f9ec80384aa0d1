// ProxierHealth's verdict: kube-proxy's timeout rule, plus a dataplane fault the applier knows of
// (a drift signal, a probe that blamed the dataplane) making /healthz unhealthy at once, /livez not.
import { describe, expect, it } from 'vitest';
import { ProxierHealth } from '../../../services/applier/proxier-health.ts';

describe('ProxierHealth', () => {
  it('a known dataplane fault fails /healthz at once until its source finds it repaired; /livez stays healthy', () => {
    let now = 0;
    const h = new ProxierHealth(60_000, () => now);
    h.dataplaneFault('drift', 'table switchboard deleted');
    h.dataplaneFault('probe', 'probe: 1 of 1 virtual server(s) failed through the dataplane');
    let v = h.verdict();
    expect(v).toMatchObject({ healthy: true, healthz: false, dataplaneOk: false });
    expect(v.reason).toBe('dataplane not forwarding: table switchboard deleted; repairing');
    h.dataplaneRepaired('drift');
    expect(h.verdict().reason).toMatch(/^dataplane not forwarding: probe: /);
    h.dataplaneRepaired('probe');
    v = h.verdict();
    expect(v).toMatchObject({ healthy: true, healthz: true, dataplaneOk: true, reason: '' });
    // kube-proxy's own rule still holds: a change pending past the timeout
    h.queued('target version 2');
    now = 61_000;
    expect(h.verdict()).toMatchObject({ healthy: false, healthz: false, dataplaneOk: true });
  });
});
