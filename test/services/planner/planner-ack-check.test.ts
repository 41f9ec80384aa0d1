import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ackSubject, heartbeatSubject } from '../../../libs/bus/index.ts';
import { EventLog } from '../../../libs/eventlog/index.ts';
import {
  DEFAULT_PROXY_CONFIG,
  MAX_REPORT_BYTES,
  MAX_REPORT_ERROR,
  parseLabelSelector,
  type AckOrNack,
} from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import { Planner } from '../../../services/planner/planner.ts';
import { ReportLogGate } from '../../../services/planner/report-log-gate.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  ack,
  nack,
  nodeYaml,
  plannerEnv,
  plannerOptions,
  sendAck,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from './planner-support.ts';
import type { FleetStatus } from '../../../services/planner/fleet-status.ts';

// What the planner can check of an ACK (review finding F3 and its dataHash addendum): a node that
// ACKs its target with a node-state hash other than the planner's rendering, or a data hash other
// than the log's for that version, runs something else and must be neither SYNCED nor done.

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

describe('the planner checks the hashes an ACK echoes', () => {
  it('a node ACKing its target with another node-state or data hash is ERROR, and ctl wait does not count it', async () => {
    const p = planner!.planner;
    const rendered = (node: string, rev: number) =>
      nodeStateHash(renderNodeState(p.data.publishedData(), node, p.config.revision(rev)!.config));
    const logHash = p.data.latest()!.hash;
    await sendAck(env.nc, ack('node-1', 1, 1, rendered('node-1', 1), logHash));
    // node-2 echoes what node-1 renders (e.g. another applier release, other node facts)
    await sendAck(env.nc, ack('node-2', 1, 1, rendered('node-1', 1), logHash));
    const row = (node: string) => p.status().find((n) => n.node === node)!;
    await until(() => row('node-1').status === 'SYNCED' && row('node-2').status === 'ERROR', 3000, 'words');
    expect(row('node-2')).toMatchObject({
      status: 'ERROR',
      hashMatch: false,
      reason: `runs version 1 config 1 with node-state hash ${rendered('node-1', 1).slice(0, 12)}, the planner renders ${rendered('node-2', 1).slice(0, 12)}`,
    });
    const { main } = await import('../../../services/cli/main.ts');
    const wait = () => main(['ctl', '--server', planner!.url, 'wait', '--for=synced', '--timeout', '1s']);
    expect(await wait()).toBe(1);

    // the right node-state hash but content whose data hash is not the log's version 1
    await sendAck(env.nc, ack('node-2', 1, 1, rendered('node-2', 1), 'c'.repeat(64)));
    await until(() => row('node-2').reason.includes('data hash'), 3000, 'data hash reason');
    expect(row('node-2')).toMatchObject({
      status: 'ERROR',
      reason: `runs version 1 with data hash cccccccccccc, the log recorded ${logHash.slice(0, 12)}`,
    });

    await sendAck(env.nc, ack('node-2', 1, 1, rendered('node-2', 1), logHash));
    await until(() => row('node-2').status === 'SYNCED', 3000, 'node-2 SYNCED');
    expect(await wait()).toBe(0);
  });

  it('a rollout wave does not pass on an ACK whose node-state hash is not the planner rendering', async () => {
    const p = planner!.planner;
    // the canary must be a node whose applier is live and in sync (W1): node-1 runs revision 1
    const runs = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    await sendAck(env.nc, ack('node-1', 1, 1, runs, p.data.latest()!.hash));
    await until(() => p.status().find((n) => n.node === 'node-1')?.status === 'SYNCED', 3000, 'node-1 SYNCED');
    const res = await fetch(`${planner!.url}/mode`, {
      method: 'POST',
      body: JSON.stringify({ mode: 'nftables', waves: '1,100%', reason: 'try nftables' }),
      headers: { 'x-switchboard-actor': 'tester' },
    });
    expect(res.status).toBe(200);
    expect(p.config.state.rollout).toMatchObject({
      status: 'running',
      wave: 0,
      waves: [['node-1'], ['node-1', 'node-2']],
    });
    // node-1 ACKs revision 2 but echoes its revision-1 (ipvs) rendering: it did not switch
    const stale = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    await sendAck(env.nc, ack('node-1', 1, 2, stale, p.data.latest()!.hash));
    await until(() => p.config.state.rollout?.status !== 'running', 3000, 'the rollout stops');
    expect(p.config.state.rollout).toMatchObject({ status: 'halted', wave: 0 });
    expect(p.config.state.rollout!.haltedBy).toEqual({
      node: 'node-1',
      error: expect.stringMatching(
        /^runs version 1 config 2 with node-state hash [0-9a-f]{12}, the planner renders [0-9a-f]{12}$/,
      ),
    });
    expect(p.config.state.defaultRevision).toBe(1);
  });

  it('an ACK of a version the log never produced is ERROR, not what the node runs, and passes no wave (probe10 H3)', async () => {
    const p = planner!.planner;
    const rendered = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    const latest = p.data.latest()!.version;
    await sendAck(env.nc, ack('node-1', 99, 1, 'f'.repeat(64), 'e'.repeat(64)));
    const row = () => p.status().find((n) => n.node === 'node-1')!;
    await until(() => row().status !== 'UNKNOWN', 3000, 'heard');
    expect(row()).toMatchObject({
      status: 'ERROR',
      reason: `reports version 99, which the log never produced (newest ${latest})`,
      appliedVersion: null,
      lag: latest,
    });
    // a wave is not passed by it either; the canary must first be live and in sync (W1)
    await sendAck(env.nc, ack('node-1', latest, 1, rendered, p.data.latest()!.hash));
    await until(() => row().status === 'SYNCED', 3000, 'node-1 SYNCED');
    const res = await fetch(`${planner!.url}/mode`, {
      method: 'POST',
      body: JSON.stringify({ mode: 'nftables', waves: '1,100%', reason: 'try nftables' }),
      headers: { 'x-switchboard-actor': 'tester' },
    });
    expect(res.status).toBe(200);
    await sendAck(env.nc, ack('node-1', 99, 2, rendered, 'e'.repeat(64)));
    await until(() => p.config.state.rollout?.status !== 'running', 3000, 'the rollout stops');
    expect(p.config.state.rollout!.haltedBy).toEqual({
      node: 'node-1',
      error: `reports version 99, which the log never produced (newest ${latest})`,
    });
  });

  it('an ACK that says the node is unhealthy (its resync failed) is ERROR, not SYNCED until its next heartbeat', async () => {
    const p = planner!.planner;
    const rendered = (node: string) =>
      nodeStateHash(renderNodeState(p.data.publishedData(), node, p.config.revision(1)!.config));
    const logHash = p.data.latest()!.hash;
    await sendAck(env.nc, ack('node-1', 1, 1, rendered('node-1'), logHash));
    const detail = 'resync: the kernel does not match version 1 after a repair';
    await sendAck(env.nc, { ...ack('node-2', 1, 1, rendered('node-2'), logHash), healthy: false, detail });
    const row = (node: string) => p.status().find((n) => n.node === node)!;
    await until(() => row('node-1').status === 'SYNCED' && row('node-2').status !== 'UNKNOWN', 3000, 'both heard');
    expect(row('node-2')).toMatchObject({ status: 'ERROR', reason: `unhealthy: ${detail}` });
  });

  it('two appliers reporting as one node (instance ids alternate on the wire) make it ERROR naming both', async () => {
    const p = planner!.planner;
    const rendered = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
    await sendAck(env.nc, { ...ack('node-1', 1, 1, rendered, p.data.latest()!.hash), instance: 'aaaa' });
    const beat = (instance: string) =>
      JSON.stringify({
        node: 'node-1',
        appliedVersion: 1,
        appliedConfigRevision: 1,
        mode: 'ipvs',
        healthy: true,
        detail: '',
        instance,
        at: new Date().toISOString(),
      });
    for (const id of ['bbbb', 'aaaa']) env.nc.publish(heartbeatSubject('node-1'), beat(id));
    await env.nc.flush();
    const row = () => p.status().find((n) => n.node === 'node-1')!;
    await until(() => row().status === 'ERROR', 3000, 'ERROR');
    expect(row().reason).toBe('two appliers report as node-1 (instances aaaa, bbbb)');
  });

  it('a follower whose log imported a version its view has not reloaded yet never says a node runs the wrong content (probe3 U1); status() renders no node, only ACKs of the latest version are checked, off the read path (review4 G7)', async () => {
    const p = planner!.planner;
    // The follower's copy of the log: the same file (what its replicated log imports into it).
    const log = await EventLog.open({ file: env.db });
    let hear: ((a: AckOrNack) => void) | undefined;
    const follower = new Planner({
      log,
      bus: { listen: (h: { onAck: (a: AckOrNack) => void }) => void (hear = h.onAck) } as never,
      source: (() => {
        throw new Error('a follower starts no source');
      }) as never,
      initialConfig: DEFAULT_PROXY_CONFIG,
      role: 'follower',
    });
    try {
      await follower.start();
      const rendered = () =>
        nodeStateHash(renderNodeState(p.data.publishedData(), 'node-1', p.config.revision(1)!.config));
      const row = (node = 'node-1') => follower.status().find((n) => n.node === node)!;
      const checks = follower.hashChecks;
      // nodes heard once, at version 1, then gone (G1: they stay in the fleet)
      for (const n of ['gone-1', 'gone-2']) hear!(ack(n, 1, 1, 'x'.repeat(64), p.data.latest()!.hash));
      hear!(ack('node-1', 1, 1, rendered(), p.data.latest()!.hash));
      // (G7) right after the ACK the row says it is being checked, and reading it rendered nothing
      expect(row()).toMatchObject({
        status: 'APPLYING',
        hashMatch: null,
        reason: 'acked version 1 config 1; checking its node-state hash',
      });
      expect(checks.rendered).toBe(0);
      await until(() => checks.pending === 0, 3000, 'checks done');
      expect(row()).toMatchObject({ status: 'SYNCED', hashMatch: true });
      expect(row('gone-1')).toMatchObject({ status: 'ERROR', hashMatch: false });
      expect(checks.rendered).toBe(3); // the three ACKs of version 1; node-2 never ACKed: not rendered
      env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1', '10.0.0.2']));
      await until(() => log.latestVersion()?.version === 2, 5000, 'version 2 in the log');
      hear!(ack('node-1', 2, 1, rendered(), p.data.latest()!.hash)); // the node runs version 2 exactly
      // Not refreshed yet: its view is version 1. It rendered version 1's content under version 2's key.
      expect(row().status).not.toBe('ERROR');
      await follower.refresh();
      // (G7) version 2: only node-1 ACKed it, so only node-1 is queued; the departed are not rendered
      expect(follower.status().map((r) => [r.node, r.targetVersion, r.hashMatch])).toEqual(
        ['gone-1', 'gone-2', 'node-1', 'node-2'].map((n) => [n, 2, null]),
      );
      expect(checks.pending).toBe(1);
      await until(() => row().status === 'SYNCED', 3000, 'node-1 checked at version 2');
      expect(row()).toMatchObject({ status: 'SYNCED', hashMatch: true, targetVersion: 2 });
      expect(checks.rendered).toBe(4);
    } finally {
      await follower.stop();
      log.close();
    }
  });

  it('a node flooding its own subject: oversize reports are refused, long errors cut, repeats logged once (review3 N2)', async () => {
    const p = planner!.planner;
    const rendered = nodeStateHash(renderNodeState(p.data.publishedData(), 'node-2', p.config.revision(1)!.config));
    const logHash = p.data.latest()!.hash;
    const row = () => p.status().find((n) => n.node === 'node-2')!;
    await sendAck(env.nc, ack('node-2', 1, 1, rendered, logHash));
    await until(() => row().status === 'SYNCED', 3000, 'SYNCED');
    // over the byte bound: refused unparsed, and what the planner knows of node-2 stays
    for (let i = 0; i < 3; i++)
      env.nc.publish(ackSubject('node-2'), JSON.stringify(nack('node-2', 9, 1, 'x'.repeat(MAX_REPORT_BYTES))));
    // under it, but with a long error, 40 times the same: the planner keeps a cut text and logs it once
    const long = `<b>boom</b> ${'y'.repeat(20_000)}`;
    const failed = { ...nack('node-2', 1, 1, long), lastGoodVersion: 0, lastGoodConfigRevision: 0 };
    for (let i = 0; i < 40; i++) env.nc.publish(ackSubject('node-2'), JSON.stringify(failed));
    await env.nc.flush();
    await until(() => row().status === 'ERROR', 3000, 'ERROR');
    expect(row().lastError).toMatch(/^<b>boom<\/b> y+… \[\d+ more characters\]$/);
    expect(row().lastError!.length).toBeLessThanOrEqual(MAX_REPORT_ERROR);
    // a genuine ACK after the flood is recorded, as every change of a node's word is
    await sendAck(env.nc, ack('node-2', 1, 1, rendered, logHash));
    await until(() => row().status === 'SYNCED', 3000, 'SYNCED again');
    const db = new Database(env.db, { readonly: true });
    try {
      const read = () =>
        db.prepare(`SELECT type, version, length(body) AS bytes FROM acks WHERE node = 'node-2' ORDER BY id`).all() as {
          type: string;
          version: number;
          bytes: number;
        }[];
      // reports are written by a group-commit step just after the steps that heard them (review4 G9)
      await until(() => read().length >= 3, 3000, 'the third row');
      const rows = read();
      expect(rows.map((r) => `${r.type} ${r.version}`)).toEqual(['ACK 1', 'NACK 1', 'ACK 1']);
      expect(Math.max(...rows.map((r) => r.bytes))).toBeLessThan(MAX_REPORT_ERROR + 1000);
    } finally {
      db.close();
    }

    // Over its budget a node's newest report is held; a clean stop (SIGTERM) writes it: it is the
    // node's last word. A budget that refills in 1000 s: nothing comes due during the test.
    Object.assign(p, { reportGate: new ReportLogGate({ burst: 1, perSecond: 0.001 }) });
    for (const e of ['one', 'two', 'last'])
      env.nc.publish(ackSubject('node-2'), JSON.stringify(nack('node-2', 1, 1, e)));
    await env.nc.flush();
    await until(() => row().lastError === 'last', 3000, 'the last word heard');
    await planner!.stop();
    planner = undefined;
    const after = new Database(env.db, { readonly: true });
    try {
      const tail = after
        .prepare(`SELECT json_extract(body, '$.error') AS e FROM acks WHERE node = 'node-2' ORDER BY id DESC LIMIT 2`)
        .all() as { e: string }[];
      expect(tail.map((r) => r.e).reverse()).toEqual(['one', 'last']); // 'two' was replaced while held
    } finally {
      after.close();
    }
  });
});

describe('the fleet is the cluster, not every node ever heard (review4 G1)', () => {
  it('a node that left the data and fell silent leaves status, memory and later rollouts, also after a restart', async () => {
    const restart = async () => {
      await planner?.stop();
      planner = await runPlanner({
        ...plannerOptions(env),
        statusThresholds: { silenceMs: 800, applyTimeoutMs: 60_000 },
        say: () => {},
      });
      await planner.planner.synced;
      return planner.planner;
    };
    let p = await restart();
    const hash = p.data.latest()!.hash;
    const rendered = (node: string) =>
      nodeStateHash(renderNodeState(p.data.publishedData(), node, p.config.revision(1)!.config));
    // node-3 has no Node object (deleted, scaled down): while it reports it is shown
    for (const n of ['node-1', 'node-2', 'node-3']) await sendAck(env.nc, ack(n, 1, 1, rendered(n), hash));
    const names = () => p.status().map((r) => r.node);
    await until(() => names().includes('node-3'), 3000, 'node-3 heard');
    expect(p.status().find((r) => r.node === 'node-3')?.reason).toMatch(/no Node object of this name in the cluster/);
    expect(p.status().find((r) => r.node === 'node-1')?.reason).not.toMatch(/no Node object/);
    // silent past the threshold: gone from status and from what the planner keeps of nodes
    await until(() => !names().includes('node-3'), 5000, 'node-3 forgotten');
    expect(names()).toEqual(['node-1', 'node-2']);
    expect(p.reportGate.gated()).not.toContain('node-3');
    // a restart seeds node-3's logged ACK, dated when it was heard: still gone
    p = await restart();
    expect(names()).toEqual(['node-1', 'node-2']);
    // a rollout waves over the cluster's nodes only, so it can complete (node-1, live, is its canary: W1)
    await sendAck(env.nc, ack('node-1', 1, 1, rendered('node-1'), hash));
    await until(() => p.status().find((r) => r.node === 'node-1')?.status === 'SYNCED', 3000, 'node-1 SYNCED');
    const res = await fetch(`${planner!.url}/mode`, {
      method: 'POST',
      body: JSON.stringify({ mode: 'nftables', waves: '1,100%', reason: 'after a scale-down' }),
      headers: { 'x-switchboard-actor': 'tester' },
    });
    expect(res.status).toBe(200);
    expect(p.config.state.rollout?.waves).toEqual([['node-1'], ['node-1', 'node-2']]);
    // the node comes back (re-registered applier): heard afresh
    await sendAck(env.nc, ack('node-3', 1, 1, rendered('node-3'), hash));
    await until(() => names().includes('node-3'), 3000, 'node-3 back');
  });
});

describe('planner --node-selector: which Nodes are proxied (probe4 K8)', () => {
  it('a Node outside the selector is in no wave and no wait; one that reports anyway is shown with the reason', async () => {
    const node = (name: string, ip: string, os: string) =>
      `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}, labels: {kubernetes.io/os: ${os}}}\nstatus: {addresses: [{type: InternalIP, address: ${ip}}]}\n`;
    env.write(
      'nodes.yaml',
      [
        node('node-1', '192.0.2.1', 'linux'),
        node('node-2', '192.0.2.2', 'windows'),
        node('node-3', '192.0.2.3', 'windows'),
      ].join('---\n'),
    );
    await planner?.stop();
    const said: string[] = [];
    planner = await runPlanner({
      ...plannerOptions(env),
      nodeSelector: parseLabelSelector('kubernetes.io/os=linux'),
      say: (line) => said.push(line),
    });
    const p = planner.planner;
    await p.synced;
    expect(said).toContain(
      "fleet: Nodes matching --node-selector 'kubernetes.io/os=linux' (others are in no rollout wave and no ctl wait)",
    );
    // node-3 is new: in the published data once version 2 is out
    await until(() => [...p.data.publishedData().nodeNames()].includes('node-3'), 3000, 'version 2');
    expect(p.fleet()).toEqual(['node-1']); // before: node-1, node-2, node-3
    const hash = p.data.latest()!.hash;
    const rendered = (n: string) =>
      nodeStateHash(renderNodeState(p.data.publishedData(), n, p.config.revision(1)!.config));
    await sendAck(env.nc, ack('node-1', p.data.latest()!.version, 1, rendered('node-1'), hash));
    // node-3 runs an applier anyway, and runs something else: shown, with why it does not count
    await sendAck(env.nc, ack('node-3', p.data.latest()!.version, 1, rendered('node-1'), hash));
    const rows = () => p.status();
    await until(() => rows()[0]?.status === 'SYNCED' && rows()[1]?.status === 'ERROR', 3000, 'reports');
    expect(rows().map((r) => [r.node, r.status, r.fleet ?? true])).toEqual([
      ['node-1', 'SYNCED', true],
      ['node-3', 'ERROR', false], // node-2: silent and outside, not shown (before: UNKNOWN)
    ]);
    // What a rollout step asks of its wave's nodes, one at a time, is what the whole fleet says.
    const inFleet = (n: string) => (p as unknown as { fleetStatus: FleetStatus }).fleetStatus.inFleet(n);
    expect(['node-1', 'node-2', 'node-3', 'no-such-node'].filter(inFleet)).toEqual(p.fleet());
    expect(rows()[1]!.reason).toMatch(
      /^runs version 2 config 1 with node-state hash .*; outside the fleet: its Node does not match --node-selector 'kubernetes\.io\/os=linux' \(in no rollout wave and no ctl wait\)$/,
    );
    const status = (await (await fetch(`${planner.url}/status`)).json()) as { nodeSelector: string };
    expect(status.nodeSelector).toBe('kubernetes.io/os=linux');
    const { main } = await import('../../../services/cli/main.ts');
    expect(await main(['ctl', '--server', planner.url, 'wait', '--for=synced', '--timeout', '2s'])).toBe(0);
    const res = await fetch(`${planner.url}/mode`, {
      method: 'POST',
      body: JSON.stringify({ mode: 'nftables', waves: '1,100%', reason: 'linux nodes only' }),
      headers: { 'x-switchboard-actor': 'tester' },
    });
    expect(res.status).toBe(200);
    expect(p.config.state.rollout?.waves).toEqual([['node-1']]); // before: node-2 and node-3 in wave 2
  });
});

describe('node reports are written in group commits (review4 G9)', () => {
  it('30 ACKs arriving together take a few transactions, not one fsync each, and every one is logged', async () => {
    const p = planner!.planner;
    const log = (p as unknown as { options: { log: EventLog } }).options.log;
    // a commit: an atomically() call, or a recordAck made outside one
    let commits = 0;
    let depth = 0;
    const atomically = log.atomically.bind(log);
    const recordAck = log.recordAck.bind(log);
    log.atomically = (fn) => {
      if (depth++ === 0) commits++;
      try {
        return atomically(fn);
      } finally {
        depth--;
      }
    };
    log.recordAck = (a) => {
      if (depth === 0) commits++;
      return recordAck(a);
    };
    const db = new Database(env.db, { readonly: true });
    const hash = p.data.latest()!.hash;
    const rows = () =>
      (db.prepare("SELECT count(*) AS n FROM acks WHERE node LIKE 'burst-%'").get() as { n: number }).n;
    for (let i = 0; i < 30; i++)
      env.nc.publish(ackSubject(`burst-${i}`), JSON.stringify(ack(`burst-${i}`, 1, 1, 'a'.repeat(64), hash)));
    await env.nc.flush();
    try {
      await until(() => rows() === 30, 5000, '30 ACK rows');
    } finally {
      db.close();
    }
    expect(commits).toBeLessThanOrEqual(5);
  });
});
