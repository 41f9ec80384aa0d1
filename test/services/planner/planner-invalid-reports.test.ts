import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ackSubject, heartbeatSubject } from '../../../libs/bus/index.ts';
import { MAX_REPORT_BYTES } from '../../../libs/model/index.ts';
import { InvalidReportLimiter } from '../../../services/planner/invalid-reports.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, plannerOptions, sliceYaml, svcYaml, until, type PlannerEnv } from './planner-support.ts';

// probe10 H2: reports the collector drops (not JSON, schema-wrong, too large, naming another node)
// were dropped with no word; an applier whose every report fails looked merely silent.

let env: PlannerEnv;
let planner: RunningPlanner | undefined;
const said: string[] = [];

beforeEach(async () => {
  said.length = 0;
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  planner = await runPlanner({
    ...plannerOptions(env),
    say: (line) => said.push(line),
  });
  await planner.planner.synced;
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

describe('invalid reports are counted, said (rate-limited) and shown on the node row', () => {
  it('garbage on a known node’s subjects and on an unknown one', async () => {
    const garbage: [string, string][] = [
      [ackSubject('node-1'), '{"type":"ACK","node":"node-1","vers'],
      [ackSubject('node-1'), '{"type":"ACK","node":"node-1","vers'],
      [ackSubject('node-1'), 'a'.repeat(MAX_REPORT_BYTES + 1)],
      [ackSubject('node-1'), '{"type":"ACK","node":"node-2"}'],
      [heartbeatSubject('node-1'), 'null'],
      [ackSubject('ghost-1'), '[]'],
      [ackSubject('ghost-2'), '[]'],
    ];
    for (const [s, body] of garbage) env.nc.publish(s, body);
    await env.nc.flush();
    const metric = async () => (await fetch(`${planner!.url}/metrics`)).text();
    await until(async () => (await metric()).includes('reason="not_json"} 2'), 3000, 'counted');
    const m = await metric();
    expect(m).toContain('switchboard_planner_invalid_reports_total{node="node-1",reason="not_json"} 2');
    expect(m).toContain('switchboard_planner_invalid_reports_total{node="node-1",reason="too_large"} 1');
    expect(m).toContain('switchboard_planner_invalid_reports_total{node="node-1",reason="schema"} 2');
    // unknown subject names are never a label value
    expect(m).toContain('switchboard_planner_invalid_reports_total{node="",reason="schema"} 2');
    expect(m).not.toContain('ghost');
    // one line per node and reason: the second truncated ACK is not said again
    const lines = said.filter((l) => l.startsWith('dropped an invalid report'));
    expect(lines.filter((l) => l.includes('node-1 (not_json)'))).toHaveLength(1);
    expect(lines.some((l) => l.includes('node-1 (too_large)'))).toBe(true);
    expect(lines.some((l) => l.includes('unknown node "ghost-1" (schema)'))).toBe(true);
    expect(lines.some((l) => l.includes('ghost-2'))).toBe(false); // same key (unknown node, schema)
    const status = (await (await fetch(`${planner!.url}/status`)).json()) as {
      nodes: { node: string; lastInvalidReport?: string }[];
    };
    expect(status.nodes.find((n) => n.node === 'node-1')?.lastInvalidReport).toMatch(/^heartbeat: /);
  });
});

describe('InvalidReportLimiter', () => {
  it('says a node+reason once a minute, then with the count of the ones not said', () => {
    const l = new InvalidReportLimiter(60_000);
    expect(l.offer('n', 'n', 'ack: not JSON', 0)).toMatch(/from n \(not_json\)/);
    expect(l.offer('n', 'n', 'ack: not JSON', 10)).toBeUndefined();
    expect(l.offer('n', 'n', 'ack: not JSON', 20)).toBeUndefined();
    expect(l.offer('n', 'n', 'ack: type: bad', 30)).toMatch(/\(schema\)/);
    expect(l.offer('n', 'n', 'ack: not JSON', 60_001)).toMatch(/\(2 more from it since the last such line\)$/);
  });
});
