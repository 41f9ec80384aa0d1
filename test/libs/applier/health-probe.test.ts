import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DataplaneProbe,
  judgeHealth,
  noProbe,
  pickProbeTargets,
  RateBudget,
  tcpConnect,
  withInjectedVerdict,
  type Connector,
  type ProbeOutcome,
} from '../../../libs/applier/index.ts';
import { AckOrNackSchema, HeartbeatSchema, checkWire, type ProbeReport } from '../../../libs/model/index.ts';
import { nodeState } from '../../netns/support/node-state-builder.ts';

const state = nodeState([
  { servicePort: 'ns/a:http', address: '10.96.0.1', port: 80, endpoints: ['10.0.0.1:8080'] },
  { servicePort: 'ns/b:http', address: '10.96.0.2', port: 80, endpoints: ['10.0.0.2:8080', '10.0.0.3:8080'] },
  { servicePort: 'ns/c:http', address: '10.96.0.3', port: 80, endpoints: ['10.0.0.4:8080'] },
  { servicePort: 'ns/dns:dns', address: '10.96.0.10', port: 53, protocol: 'UDP', endpoints: ['10.0.0.5:53'] },
  { servicePort: 'ns/empty:http', address: '10.96.0.4', port: 80, endpoints: [] },
  {
    servicePort: 'ns/lb:http',
    address: '203.0.113.1',
    port: 80,
    role: 'load-balancer',
    sourceRanges: ['198.51.100.0/24'],
    endpoints: ['10.0.0.1:8080'],
  },
]);

describe('pickProbeTargets', () => {
  it('samples TCP virtual servers with an endpoint, leaving out UDP, empty ones and source-restricted LBs', () => {
    const keys = (round: number, sample = 3) => pickProbeTargets(state, sample, round).map((t) => t.key);
    expect(keys(0)).toEqual(['tcp/10.96.0.1:80', 'tcp/10.96.0.2:80', 'tcp/10.96.0.3:80']);
    expect(keys(0, 10)).toHaveLength(3);
    expect(keys(0, 0)).toEqual([]);
  });

  it('moves on each round so successive rounds cover every candidate and every endpoint', () => {
    const seen = new Set<string>();
    for (let round = 0; round < 6; round++)
      for (const t of pickProbeTargets(state, 1, round)) seen.add(`${t.key}->${t.endpoint.text}`);
    expect([...seen].sort()).toEqual([
      'tcp/10.96.0.1:80->10.0.0.1:8080',
      'tcp/10.96.0.2:80->10.0.0.2:8080',
      'tcp/10.96.0.2:80->10.0.0.3:8080',
      'tcp/10.96.0.3:80->10.0.0.4:8080',
    ]);
  });
});

/** A connector that answers from a table, recording every connection in order. */
function fakeConnector(answers: Record<string, string | number>): { connect: Connector; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    connect: async (address, port) => {
      const k = `${address}:${port}`;
      calls.push(k);
      const a = answers[k] ?? 'ECONNREFUSED';
      return typeof a === 'number' ? { ok: true, ms: a } : { ok: false, error: a };
    },
  };
}
const settings = { sample: 3, ratePerSec: 1000, timeoutMs: 1000, intervalMs: 0 };
const report = (o: ProbeOutcome) => (o.kind === 'report' ? o.report : undefined)!;

describe('DataplaneProbe', () => {
  it('checks each endpoint directly, then the virtual server through the dataplane', async () => {
    const f = fakeConnector({
      '10.0.0.1:8080': 1,
      '10.96.0.1:80': 4,
      '10.0.0.2:8080': 1,
      '10.96.0.2:80': 'ETIMEDOUT',
      '10.0.0.4:8080': 'EHOSTUNREACH',
    });
    const r = report(await new DataplaneProbe(settings, f.connect).probe(state));
    expect(r).toMatchObject({ attempted: 2, succeeded: 1, failed: 1, unreachable: 1, latencyMs: { p50: 4, max: 4 } });
    expect(r.failures).toEqual([
      { target: 'tcp/10.96.0.2:80', error: 'ETIMEDOUT (endpoint 10.0.0.2:8080 answers directly)' },
    ]);
    // The unreachable endpoint's virtual server is never tried: its failure would not be the dataplane's.
    expect(f.calls).not.toContain('10.96.0.3:80');
    expect(f.calls.indexOf('10.0.0.1:8080')).toBeLessThan(f.calls.indexOf('10.96.0.1:80'));
  });

  it('never opens more connections than the rate budget allows in a second', async () => {
    let now = 0;
    const slept: number[] = [];
    const budget = new RateBudget(
      2,
      () => now,
      async (ms) => {
        slept.push(ms);
        now += ms;
      },
    );
    const f = fakeConnector({
      '10.0.0.1:8080': 1,
      '10.96.0.1:80': 1,
      '10.0.0.2:8080': 1,
      '10.96.0.2:80': 1,
      '10.0.0.4:8080': 1,
      '10.96.0.3:80': 1,
    });
    const r = report(await new DataplaneProbe({ ...settings, ratePerSec: 2 }, f.connect, budget).probe(state));
    expect(r.succeeded).toBe(3);
    expect(f.calls).toHaveLength(6);
    // 6 connections at 2 per second with a burst of 2: the last 4 wait 2 s in all.
    expect(now).toBeGreaterThanOrEqual(2000);
    expect(slept.length).toBeGreaterThan(0);
  });

  it('opens real TCP connections: a listener answers, a closed port fails', async () => {
    const server: Server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      expect(await tcpConnect('127.0.0.1', port, 1000)).toMatchObject({ ok: true });
      server.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(await tcpConnect('127.0.0.1', port, 1000)).toEqual({ ok: false, error: 'ECONNREFUSED' });
    } finally {
      server.close();
    }
  });
});

const rep = (o: Partial<ProbeReport>): ProbeOutcome => ({
  kind: 'report',
  report: { attempted: 0, succeeded: 0, failed: 0, unreachable: 0, latencyMs: null, failures: [], at: 'T', ...o },
});

describe('judgeHealth', () => {
  it('healthy only with the state verified and every attempted virtual server answering', () => {
    const ok = judgeHealth({
      stateVerified: true,
      outcome: rep({ attempted: 3, succeeded: 3, latencyMs: { p50: 1.5, max: 12 } }),
      at: 'T',
    });
    expect(ok).toMatchObject({
      verdict: 'healthy',
      stateVerified: true,
      reason: 'probe: 3/3 virtual server(s) answered through the dataplane, connect p50 1.5ms max 12ms',
    });
    expect(ok.injected).toBeUndefined();
    expect(judgeHealth({ stateVerified: false, outcome: rep({ attempted: 3, succeeded: 3 }), at: 'T' }).verdict).toBe(
      'unhealthy',
    );
    const bad = judgeHealth({
      stateVerified: true,
      outcome: rep({
        attempted: 3,
        succeeded: 2,
        failed: 1,
        failures: [{ target: 'tcp/10.96.0.1:80', error: 'ETIMEDOUT' }],
      }),
      at: 'T',
    });
    expect(bad).toMatchObject({
      verdict: 'unhealthy',
      reason: 'probe: 1 of 3 virtual server(s) failed through the dataplane: tcp/10.96.0.1:80: ETIMEDOUT',
    });
  });

  it('says so when no probe is possible, and never calls that healthy', () => {
    expect(
      judgeHealth({
        stateVerified: true,
        outcome: { kind: 'unavailable', reason: 'dry-run: no dataplane to probe' },
        at: 'T',
      }),
    ).toMatchObject({ verdict: 'unprobed', reason: 'dry-run: no dataplane to probe', probe: null });
    expect(judgeHealth({ stateVerified: true, outcome: rep({ unreachable: 2 }), at: 'T' }).reason).toMatch(
      /^no probe possible: the endpoints of the 2 sampled/,
    );
    expect(judgeHealth({ stateVerified: true, outcome: rep({}), at: 'T' }).reason).toMatch(
      /^no probe possible: no TCP virtual server/,
    );
  });
});

describe('the test-only verdict file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-verdict-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the probe while it holds a verdict, marked injected; absent or empty, the real probe runs', async () => {
    const file = join(dir, 'v');
    const p = withInjectedVerdict(noProbe('dry-run: no dataplane to probe'), file);
    expect(await p.probe(state)).toEqual({ kind: 'unavailable', reason: 'dry-run: no dataplane to probe' });
    writeFileSync(file, 'unhealthy replies dropped on purpose\n');
    const o = await p.probe(state);
    expect(o).toEqual({ kind: 'injected', verdict: 'unhealthy', reason: 'replies dropped on purpose' });
    expect(judgeHealth({ stateVerified: true, outcome: o, at: 'T' })).toMatchObject({
      verdict: 'unhealthy',
      injected: true,
      reason: 'replies dropped on purpose (injected by --test-verdict-file)',
    });
    writeFileSync(file, 'sick');
    expect(await p.probe(state)).toMatchObject({
      kind: 'injected',
      verdict: 'unhealthy',
      reason: expect.stringMatching(/holds neither/),
    });
    writeFileSync(file, '');
    expect((await p.probe(state)).kind).toBe('unavailable');
  });
});

describe('the verdict on the wire is additive', () => {
  const ack = {
    type: 'ACK',
    node: 'n',
    version: 3,
    configRevision: 2,
    dataHash: 'd',
    nodeStateHash: 'h',
    mode: 'nftables',
    kernelWrites: 0,
    timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
    at: 'T',
  };
  const health = {
    verdict: 'healthy',
    stateVerified: true,
    reason: 'probe: 1/1',
    probe: {
      attempted: 1,
      succeeded: 1,
      failed: 0,
      unreachable: 0,
      latencyMs: { p50: 1, max: 1 },
      failures: [],
      at: 'T',
    },
    at: 'T',
  };
  it('an ACK or heartbeat without it (an older applier) still parses; with it, it is checked', () => {
    expect(checkWire(AckOrNackSchema, ack, 'ack')).toEqual({ value: ack });
    expect(
      checkWire(AckOrNackSchema, { ...ack, health, timings: { ...ack.timings, probeMs: 3 } }, 'ack'),
    ).toMatchObject({ value: { health: { verdict: 'healthy' } } });
    expect(checkWire(AckOrNackSchema, { ...ack, health: { ...health, verdict: 'great' } }, 'ack')).toMatchObject({
      error: expect.stringMatching(/^ack: health\.verdict:/),
    });
    const hb = {
      node: 'n',
      appliedVersion: 3,
      appliedConfigRevision: 2,
      mode: 'nftables',
      healthy: true,
      detail: '',
      at: 'T',
    };
    expect(checkWire(HeartbeatSchema, hb, 'heartbeat')).toEqual({ value: hb });
    expect(
      checkWire(
        HeartbeatSchema,
        {
          ...hb,
          health: { ...health, probe: { ...health.probe, failures: Array(9).fill({ target: 'x', error: 'y' }) } },
        },
        'heartbeat',
      ),
    ).toMatchObject({ error: expect.stringMatching(/^heartbeat: health\.probe\.failures/) });
  });
});
