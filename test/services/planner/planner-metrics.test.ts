import { statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  ack,
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sendAck,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';

// O1: /metrics of a running planner carries prom-client's process_* and nodejs_* metrics beside
// its own (one registry, no name twice), and gauges read at scrape time for the event log's disk
// use and retained range, the nodes by status word and the group's streams.

let env: PlannerEnv;
let planner: RunningPlanner | undefined;

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  planner = await runPlanner({
    ...plannerOptions(env),
    say: () => {},
  });
  await planner.planner.synced;
});
afterEach(async () => {
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

interface Exposition {
  /** `# TYPE` of each metric family, in order (a name twice would be a registry clash). */
  readonly types: [string, string][];
  /** Each sample by its name and label text as exposed, e.g. `x{status="SYNCED"}`. */
  readonly samples: Map<string, number>;
}

/** Parses Prometheus text exposition (the subset prom-client writes). */
function parse(text: string): Exposition {
  const types: [string, string][] = [];
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.push([t[1]!, t[2]!]);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return { types, samples };
}

const scrape = async () => {
  const res = await fetch(`${planner!.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return parse(await res.text());
};

const nodes = (e: Exposition) =>
  Object.fromEntries(
    ['SYNCED', 'APPLYING', 'STALE', 'ERROR', 'UNKNOWN'].map((s) => [
      s,
      e.samples.get(`switchboard_planner_nodes{status="${s}"}`),
    ]),
  );

describe('planner /metrics (O1)', () => {
  it('exposes default process/nodejs metrics and scrape-time log, node and stream gauges that track reality', async () => {
    const first = await scrape();
    const names = first.types.map(([n]) => n);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]); // no family twice
    const type = new Map(first.types);
    for (const [n, t] of [
      ['process_cpu_user_seconds_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'],
      ['process_open_fds', 'gauge'],
      ['nodejs_heap_size_used_bytes', 'gauge'],
      ['nodejs_eventloop_lag_seconds', 'gauge'],
      ['nodejs_gc_duration_seconds', 'histogram'],
      ['switchboard_planner_log_file_bytes', 'gauge'],
      ['switchboard_planner_log_wal_bytes', 'gauge'],
      ['switchboard_planner_log_fs_free_bytes', 'gauge'],
      ['switchboard_planner_log_oldest_version', 'gauge'],
      ['switchboard_planner_log_oldest_seq', 'gauge'],
      ['switchboard_planner_nodes', 'gauge'],
      ['switchboard_planner_stream_bytes', 'gauge'],
      ['switchboard_planner_stream_messages', 'gauge'],
    ])
      expect({ n, t: type.get(n!) }).toEqual({ n, t });
    const v = (k: string) => first.samples.get(k);

    // the log: its file (with WAL and shm) is at least the main file; free bytes are statfs's
    expect(v('switchboard_planner_log_file_bytes')).toBeGreaterThanOrEqual(statSync(env.db).size);
    expect(v('switchboard_planner_log_wal_bytes')).toBeLessThanOrEqual(v('switchboard_planner_log_file_bytes')!);
    const fs = statfsSync(path.dirname(env.db));
    expect(Math.abs(v('switchboard_planner_log_fs_free_bytes')! - fs.bavail * fs.bsize)).toBeLessThan(
      fs.blocks * fs.bsize * 0.01,
    );
    const st = (await (await fetch(`${planner!.url}/status`)).json()) as {
      retention: { oldestVersion: number; oldestSeq: number };
    };
    expect(v('switchboard_planner_log_oldest_version')).toBe(st.retention.oldestVersion);
    expect(v('switchboard_planner_log_oldest_seq')).toBe(st.retention.oldestSeq);
    expect(st.retention.oldestVersion).toBe(1);

    // the group's streams: version 1 is on SB_VERSIONS, the log's rows on SB_LOG_<group>
    for (const s of ['SB_VERSIONS', 'SB_LOG_switchboard']) {
      expect(v(`switchboard_planner_stream_messages{stream="${s}"}`)).toBeGreaterThan(0);
      expect(v(`switchboard_planner_stream_bytes{stream="${s}"}`)).toBeGreaterThan(0);
    }

    // nodes by status: both Nodes never heard from, then node-1 ACKs what the planner expects
    expect(nodes(first)).toEqual({ SYNCED: 0, APPLYING: 0, STALE: 0, ERROR: 0, UNKNOWN: 2 });
    const p = planner!.planner;
    const rendered = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    await sendAck(env.nc, ack('node-1', 1, 1, rendered, p.data.latest()!.hash));
    await until(async () => nodes(await scrape()).SYNCED === 1, 5000, 'node-1 SYNCED in /metrics');
    expect(nodes(await scrape())).toEqual({ SYNCED: 1, APPLYING: 0, STALE: 0, ERROR: 0, UNKNOWN: 1 });
    // a wrong data hash makes it ERROR
    await sendAck(env.nc, ack('node-1', 1, 1, rendered, 'c'.repeat(64)));
    await until(async () => nodes(await scrape()).ERROR === 1, 5000, 'node-1 ERROR in /metrics');
  });
});
