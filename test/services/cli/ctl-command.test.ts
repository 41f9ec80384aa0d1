import { writeFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  rollbackConfig,
  startRollout,
  stepRollout,
  type ConfigTargetState,
  type NodeReport,
} from '../../../libs/control/index.ts';
import { DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { untilSynced, waitUntil } from '../../../services/cli/commands/ctl-wait.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import {
  nack,
  nodeYaml,
  plannerEnv,
  sendAck,
  sliceYaml,
  svcYaml,
  until,
  type PlannerEnv,
} from '../planner/planner-support.ts';
import { sb, sbIn } from './cli-support.ts';

let env: PlannerEnv;
let planner: RunningPlanner | undefined;
let appliers: ApplierService[] = [];
let tokenFile: string;

beforeEach(async () => {
  env = await plannerEnv();
  env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1') + '---\n' + nodeYaml('node-2', '192.0.2.2'));
  env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1']));
  tokenFile = path.join(env.dir, 'tokens');
  writeFileSync(tokenFile, 'op-tok ci operator\nview-tok vera\n');
});
afterEach(async () => {
  for (const a of appliers) await a.stop();
  appliers = [];
  await planner?.stop();
  planner = undefined;
  await env.cleanup();
});

const start = async () => {
  planner = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    db: env.db,
    http: '127.0.0.1:0',
    tokenFile,
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: () => {},
  });
  await planner.planner.synced;
  return planner;
};
/** Real appliers in dry-run mode: the whole protocol over NATS, the kernel untouched. */
const startAppliers = async (...nodes: string[]) => {
  for (const node of nodes) {
    appliers.push(
      await startApplierService({
        node,
        nats: env.nats.url,
        mode: 'dry-run',
        heartbeatMs: 200,
        logger: pino({ level: 'silent' }),
      }),
    );
  }
};
const ctl = (...args: string[]) => sbIn(['ctl', '--server', planner!.url, '--token', 'op-tok', ...args]);

describe('ctl flag values are usage errors (exit 2, one line naming the flag)', () => {
  it('refuses a server URL without scheme, bad waves, numbers, formats, keys and durations', async () => {
    const spawned = await sb(['ctl', '--server', '127.0.0.1:9440', 'status']);
    expect(spawned.code).toBe(2);
    expect(spawned.stderr).toMatch(
      /^error: option '--server <url>' argument '127\.0\.0\.1:9440' is invalid\. expected an http:\/\/ or https:\/\/ URL.*\n$/,
    );
    const cases: [string[], RegExp][] = [
      [
        ['rollout', '--config-revision', '2', '--waves', 'abc'],
        /option '--waves <spec>' argument 'abc' is invalid\. waves: "abc" is neither/,
      ],
      [['mode', 'nftables', '--waves', '0%'], /option '--waves <spec>' argument '0%' is invalid/],
      [['rollout', '--config-revision', 'two'], /option '--config-revision <r>' argument 'two' is invalid/],
      [['pin', '--version', '-1'], /option '--version <n>' argument '-1' is invalid/],
      [['pin'], /required option '--version <n>' not specified/],
      [['status', '-o', 'xml'], /argument 'xml' is invalid\. Allowed choices are json, yaml, wide/],
      [['wait', '--for', 'ready'], /^switchboard: --for ready: unknown condition/],
      [['wait', '--for=synced', '--timeout', 'soon'], /option '--timeout <duration>' argument 'soon' is invalid/],
      [['config', 'set'], /^error: missing required argument 'KEY=VALUE'/],
      [['config', 'set', 'colour=blue'], /^switchboard: config set: unknown key colour/],
      [['config', 'set', 'strictARP=maybe'], /^switchboard: config set strictARP=maybe: expected true or false/],
      [['config', 'set', 'tcpTimeout=soon'], /^switchboard: config set tcpTimeout=soon: expected whole seconds/],
      [
        ['config', 'set', 'excludeCIDRs=10.0.0.0/33'],
        /^switchboard: config set excludeCIDRs=10\.0\.0\.0\/33: excludeCIDRs: invalid CIDR/,
      ],
      [['config', 'set', 'scheduler=fastest'], /^switchboard: config set scheduler=fastest: unknown scheduler fastest/],
      [['config', 'set', 'mode=ipvs', '--wait'], /^switchboard: --wait needs --waves/],
      [['diff', '1', 'x'], /^switchboard: diff: B must be a positive version number/],
      [
        ['rollback', '--to-version', '2', '--config-revision', '1'],
        /^switchboard: rollback: give --to-version .* not both/,
      ],
    ];
    for (const [args, msg] of cases) {
      const r = await sbIn(['ctl', '--server', 'http://127.0.0.1:1', ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('ctl against a real planner, nats-server and dry-run appliers', () => {
  it('status names the first rejected objects and why, not only their count', async () => {
    // four Services with an invalid clusterIP: each rejected alone (the count in the head line)
    env.write('bad.yaml', ['b1', 'b2', 'b3', 'b4'].map((n) => svcYaml(n, '10.96.0.999')).join('---\n'));
    await start();
    const r = await ctl('status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^version 1, config revision 1, rejected objects 4\n/);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('rejected Service') || l.startsWith('… '));
    expect(lines).toHaveLength(4);
    for (const l of lines.slice(0, 3))
      expect(l).toMatch(
        /^rejected Service default\/b[1-4] \(event seq \d+\): spec\.clusterIPs\[0\]: invalid IP address "10\.96\.0\.999"$/,
      );
    expect(lines[3]).toBe('… 1 more rejected (-o json lists them)');
  });

  it('waits for synced, prints tables, -o json|yaml|wide, sentences for operations, field diffs, config set and rollout --wait', async () => {
    await start();
    await startAppliers('node-1', 'node-2');

    const waited = await ctl('wait', '--for=synced', '--timeout', '60s');
    expect(waited).toMatchObject({ code: 0, stdout: 'all 2 nodes SYNCED on version 1\n' });
    expect(waited.stderr).not.toContain('\x1b'); // not a terminal: no escape codes

    const table = await ctl('status');
    expect(table.stdout).toMatch(
      /^version 1, config revision 1, rejected objects 0\nNODE\s+STATUS\s+MODE\s+TARGET\s+APPLIED\s+CONFIG\s+LAG\s+REASON\nnode-1\s+SYNCED\s+dry-run\s+1\s+1\s+1\/1\s+0\s+running version 1 config 1\nnode-2\s+SYNCED/,
    );
    expect((await ctl('status', '-o', 'wide')).stdout).toMatch(
      /NODE\s+STATUS.*HASH\s+HEALTH\s+LAST REPORT\s+HEARTBEAT\s+LAST ERROR\s+REASON\nnode-1\s+SYNCED.*\s+ok\s+unprobed\s+/,
    );
    const yaml = parseYaml((await ctl('status', '-o', 'yaml')).stdout) as { nodes: { node: string; status: string }[] };
    const json = JSON.parse((await ctl('status', '--json')).stdout) as typeof yaml;
    expect(yaml.nodes.map((n) => [n.node, n.status])).toEqual([
      ['node-1', 'SYNCED'],
      ['node-2', 'SYNCED'],
    ]);
    expect(json.nodes.map((n) => [n.node, n.status])).toEqual(yaml.nodes.map((n) => [n.node, n.status])); // times move between calls

    // A field change inside a service: an endpoint added.
    env.write('a.yaml', svcYaml('a', '10.96.0.1') + '---\n' + sliceYaml('a', ['10.0.0.1', '10.0.0.2']));
    await until(() => planner!.planner.data.latest()?.version === 2, 5000, 'version 2');
    expect((await ctl('diff', '1', '2')).stdout).toBe(
      '~ service default/a\n    + port http/TCP endpoint 10.0.0.2:8080 added\n',
    );
    expect(
      JSON.parse((await ctl('versions', '-o', 'json')).stdout).versions.map((v: { version: number }) => v.version),
    ).toEqual([1, 2]);

    const pin = await ctl('--actor', 'alice', 'pin', '--version', '1', '--reason', 'bad endpoint');
    expect(pin).toMatchObject({ code: 0, stderr: '' });
    expect(pin.stdout).toMatch(
      /^pinned: version 3 publishes version 1's content \(hash [0-9a-f]{12}\); new data is held until `ctl unpin`\.\n$/,
    );
    expect((await ctl('unpin')).stdout).toMatch(
      /^unpinned: version 4 publishes the live content \(hash [0-9a-f]{12}\)\.\n$/,
    );
    const ops = planner!.planner['options'].log
      .operations()
      .filter((o: { kind: string }) => o.kind === 'pin' || o.kind === 'unpin');
    expect(ops.map((o: { actor: string; reason: string }) => [o.actor, o.reason])).toEqual([
      ['ci/alice', 'bad endpoint'],
      ['ci', 'unpin via API'],
    ]);

    const set = await ctl(
      'config',
      'set',
      'scheduler=wrr',
      'tcpTimeout=15m',
      'excludeCIDRs=10.9.0.0/16',
      '--reason',
      'tune',
    );
    expect(set).toMatchObject({
      code: 0,
      stdout:
        'config revision 2: scheduler rr → wrr, tcpTimeout 0 → 900, excludeCIDRs (none) → 10.9.0.0/16. Not rolled out yet: ctl rollout --config-revision 2 --waves 1,10%,50%,100%\n',
    });
    // The planner validates against the current config too: sh-port needs scheduler sh.
    const refused = await ctl('config', 'set', 'schedulerFlags=sh-port');
    expect(refused).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'switchboard: planner: proxy config: flag sh-port does not apply to scheduler rr\n',
    });
    expect((await ctl('config', 'show', '--revision', '2')).stdout).toMatch(
      /^config revision 2 \(hash [0-9a-f]{16}\)\n(.*\n)* {2}scheduler: wrr\n/,
    );

    const rollout = await ctl('rollout', '--config-revision', '2', '--waves', '1,100%', '--wait', '--timeout', '60s');
    expect(rollout.code).toBe(0);
    expect(rollout.stdout).toBe(
      'rollout of config revision 2 (scheduler rr → wrr, tcpTimeout 0 → 900, excludeCIDRs (none) → 10.9.0.0/16 against the default, revision 1) started at wave 1/2: 1/2 nodes (node-1).\n',
    );
    expect(rollout.stderr).toMatch(/rollout of revision 2 completed: every wave ACKed, it is the cluster default\n$/);
    expect(planner!.planner.config.state.defaultRevision).toBe(2);

    const mode = await ctl('mode', 'nftables', '--waves', '100%', '--wait', '--timeout', '60s');
    expect(mode).toMatchObject({
      code: 0,
      stdout:
        'config revision 3: mode ipvs → nftables. rollout of config revision 3 started at wave 1/1: 2/2 nodes (node-1, node-2).\n',
    });
    expect((await ctl('mode', 'nftables')).stdout).toBe(
      'nothing changed: the cluster default (config revision 3) already has these values; no revision made.\n',
    );
    // Leaving revision 3, whose rollout had completed: that rollout is now marked rolled back.
    expect((await ctl('rollback', '--config-revision', '1')).stdout).toBe(
      'config rolled back: the cluster default is config revision 1 on every node (from revision 3; rollout of revision 3 rolled back).\n',
    );
    expect((await ctl('rollback', '--to-version', '2')).stdout).toBe(
      "rolled back data: the published content already is version 2's (no new version); new data is held until `ctl unpin`.\n",
    );
    expect(JSON.parse((await ctl('-o', 'json', 'rollback', '--to-version', '1')).stdout)).toMatchObject({
      version: 5,
      pinned: { version: 1, kind: 'rollback' },
    });

    // Review5 F2: the default (1) is not the newest revision (3). The default's values make nothing
    // (before: a twin revision 4 that the sentence called "no revision made").
    expect((await ctl('config', 'set', 'scheduler=rr')).stdout).toBe(
      'nothing changed: the cluster default (config revision 1) already has these values; no revision made.\n',
    );
    expect(planner!.planner.config.newestRevision()).toBe(3);
    expect((await ctl('mode', 'nftables')).stdout).toMatch(/^config revision 4: mode ipvs → nftables\. Not rolled out/);
    // The newest revision's values again, now with --waves --wait: it is rolled out (before: exit 0, no rollout).
    const again = await ctl('mode', 'nftables', '--waves', '100%', '--wait', '--timeout', '60s');
    expect(again).toMatchObject({
      code: 0,
      stdout:
        'config revision 4 (an existing revision with these values): mode ipvs → nftables. rollout of config revision 4 started at wave 1/1: 2/2 nodes (node-1, node-2).\n',
    });
    expect(again.stderr).toMatch(/rollout of revision 4 completed/);
    expect(planner!.planner.config.state.defaultRevision).toBe(4);
  });

  it('rollout --wait exits 1 naming the NACK that halted it; wait --timeout exits 1 naming who is behind; viewers cannot operate', async () => {
    await start(); // no appliers: this test speaks for node-1 and node-2 on the bus itself
    const timedOut = await ctl('wait', '--for=synced', '--timeout', '1s');
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toMatch(
      /^switchboard: timed out after 1s waiting for every node SYNCED: 0\/2 nodes SYNCED on version 1 \(node-1 UNKNOWN, node-2 UNKNOWN\)\n$/m,
    );

    const viewer = await sbIn(['ctl', '--server', planner!.url, '--token', 'view-tok', 'mode', 'nftables']);
    expect(viewer).toMatchObject({
      code: 1,
      stderr: 'switchboard: planner: vera is a viewer; POST /mode needs an operator token\n',
    });
    const anonymous = await sbIn(['ctl', '--server', planner!.url, 'status']);
    expect(anonymous).toMatchObject({
      code: 1,
      stderr: 'switchboard: planner: missing or wrong bearer token (give --token T or set SWITCHBOARD_TOKEN)\n',
    });

    expect((await ctl('mode', 'nftables')).code).toBe(0);
    // its own process: two ctl runs in this one would share the captured stdout (sbIn), and its
    // "rollout ... started" line landed in the next run's output under load
    const waiting = sb([
      ...['ctl', '--server', planner!.url, '--token', 'op-tok'],
      ...['rollout', '--config-revision', '2', '--waves', '100%', '--wait', '--timeout', '60s'],
    ]);
    await until(() => planner!.planner.config.state.rollout?.status === 'running', 10_000, 'rollout running');
    // review5 F2: asked to roll out the default's values while revision 2 rolls out: nothing starts, exit 1
    const none = await ctl('config', 'set', 'scheduler=rr', '--waves', '100%');
    expect(none).toEqual({
      code: 1,
      stdout: 'nothing changed: the cluster default (config revision 1) already has these values; no revision made.\n',
      stderr: 'switchboard: no rollout of config revision 1 started: the rollout of config revision 2 is running\n',
    });
    await sendAck(env.nc, nack('node-2', 1, 2, 'nft: table refused'));
    const r = await waiting;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /switchboard: rollout of revision 2 halted at wave 1\/1, 0\/2 nodes on revision 2: node-2 failed: nft: table refused\n$/,
    );
  });

  it('wait --for=synced does not pass on SYNCED nodes while the planner is not ready or its group has no leader (probe8 R2, J1)', () => {
    const node = { node: 'node-1', status: 'SYNCED', appliedConfigRevision: 1, lastError: null };
    const base = { synced: true, latestVersion: 4, nodes: [node] };
    expect(untilSynced({ ...base, notReady: null })).toMatchObject({ done: true, ok: true });
    expect(untilSynced(base)).toMatchObject({ done: true, ok: true }); // an older planner's /status
    expect(untilSynced({ ...base, notReady: 'cannot log the events it sees: append: disk full' })).toEqual({
      done: false,
      line: 'planner not ready: cannot log the events it sees: append: disk full',
    });
    expect(untilSynced({ ...base, notReady: null, group: 'g1', leader: null })).toEqual({
      done: false,
      line: 'no planner leads group g1: cluster changes are not versioned',
    });
    expect(
      untilSynced({ ...base, notReady: null, group: 'g1', leader: { id: 'p1', term: 3, api: null } }),
    ).toMatchObject({
      done: true,
      ok: true,
    });
  });

  it('shows progress in place with escape codes on a terminal only', async () => {
    await start();
    const err: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((s: string) => {
      err.push(s);
      return true;
    }) as typeof process.stderr.write;
    try {
      const c = { server: planner!.url, token: 'op-tok' };
      await waitUntil(c, untilSynced, 300, 'synced', { tty: true, intervalMs: 50 });
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal escape is what is asserted
      expect(err.join('')).toMatch(/^\r\x1b\[2K0\/2 nodes SYNCED/);
      err.length = 0;
      await waitUntil(c, untilSynced, 300, 'synced', { tty: false, intervalMs: 50 });
      expect(err.join('')).toBe('0/2 nodes SYNCED on version 1 (node-1 UNKNOWN, node-2 UNKNOWN)\n'); // printed once: it did not change
    } finally {
      process.stderr.write = write;
    }
  });
});

describe('ctl refuses a /status of another shape in one line (review5 F6)', () => {
  it('JSON without nodes and config, and an answer that is not JSON (a --server that is not a planner)', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      if (req.url === '/status') res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok": true}');
      else res.writeHead(200).end('<html>hello</html>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      for (const args of [['status'], ['rollout', 'status'], ['wait', '--for=synced', '--timeout', '1s']])
        expect(await sbIn(['ctl', '--server', url, ...args])).toEqual({
          code: 1,
          stdout: '',
          stderr: `switchboard: ${url} answered GET /status without a nodes list and a config object: is --server a Switchboard planner's API?\n`,
        });
      expect(await sbIn(['ctl', '--server', url, 'versions'])).toEqual({
        code: 1,
        stdout: '',
        stderr: `switchboard: planner at ${url} answered 200 to GET /versions with non-JSON\n`,
      });
    } finally {
      server.close();
    }
  });

  it("status prints the planner's retention in one line (policy, oldest version, last compaction, what holds it); --json keeps it as /status has it", async () => {
    const { createServer } = await import('node:http');
    const retention = {
      policy: { versions: 100, ageMs: 7 * 86_400_000 },
      oldestVersion: 12,
      oldestSeq: 340,
      oldestAckId: 77,
      lastCompaction: {
        id: 3,
        startedAt: '2026-12-02T16:00:00.000Z',
        finishedAt: '2026-12-02T16:00:01.000Z',
        by: 'planner',
        beforeVersion: 12,
        cutSeq: 339,
        acksCutId: 76,
        eventsRemoved: 339,
        acksRemoved: 76,
        checkpointsRemoved: 1,
        checkpointsWritten: 1,
        steps: 2,
        longestStepMs: 4.26,
      },
      heldBy: 'the version node-1 last ACKed',
    };
    let answer: Record<string, unknown> = {};
    const server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const status = (policy: unknown, more: object = {}) => {
      answer = {
        latestVersion: 40,
        rejectedTotal: 0,
        synced: true,
        config: { defaultRevision: 1 },
        nodes: [],
        retention: { ...retention, policy, ...more },
      };
    };
    try {
      status(retention.policy);
      const r = await sbIn(['ctl', '--server', url, 'status']);
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n').slice(0, 2)).toEqual([
        'version 40, config revision 1, rejected objects 0',
        'retention: keeps the newest 100 versions or every version current within 7d, whichever keeps more; oldest version 12; ' +
          'last compaction 2026-12-02T16:00:01.000Z by planner: 339 events (up to seq 339) and 76 ACK/NACK rows removed, keeping versions from 12 on (2 steps, the longest 4.3 ms); ' +
          'held back by the version node-1 last ACKed',
      ]);
      expect(JSON.parse((await sbIn(['ctl', '--server', url, 'status', '--json'])).stdout).retention).toEqual(
        retention,
      );

      status(null, { lastCompaction: null, heldBy: undefined, error: 'database is locked' });
      expect((await sbIn(['ctl', '--server', url, 'status'])).stdout.split('\n')[1]).toBe(
        'retention: off (the log keeps every version); oldest version 12; last compaction never; FAILING: database is locked',
      );
      // off and never run: nothing to say, the table follows the first line as before
      status(null, { lastCompaction: null, heldBy: undefined });
      expect((await sbIn(['ctl', '--server', url, 'status'])).stdout.split('\n')[1]).toMatch(/^NODE\s+STATUS/);
    } finally {
      server.close();
    }
  });

  it('status prints each node warning as a WARN NODE: text line under the table, whole and on one line; --json keeps them', async () => {
    const { createServer } = await import('node:http');
    const row = (node: string, warnings?: string[]) => ({
      node,
      status: 'SYNCED',
      mode: 'ipvs',
      targetVersion: 4,
      appliedVersion: 4,
      appliedConfigRevision: 1,
      targetConfigRevision: 1,
      lag: 0,
      reason: 'running version 4 config 1',
      ...(warnings ? { warnings } : {}),
    });
    const long = `forward drop ${'x'.repeat(200)}`;
    const answer = {
      latestVersion: 4,
      rejectedTotal: 0,
      synced: true,
      config: { defaultRevision: 1 },
      // node-c: a planner older than the field sends no warnings at all
      nodes: [row('node-a', ['listener down', `two\nlines`]), row('node-b', []), row('node-c'), row('node-d', [long])],
    };
    const server = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const r = await sbIn(['ctl', '--server', url, 'status']);
      expect(r.code).toBe(0);
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toBe('version 4, config revision 1, rejected objects 0');
      expect(lines[1]).toMatch(/^NODE\s+STATUS\s+MODE/);
      expect(lines.slice(2, 6).map((l) => l.split(/\s+/)[0])).toEqual(['node-a', 'node-b', 'node-c', 'node-d']);
      expect(lines.slice(6)).toEqual(['WARN node-a: listener down', 'WARN node-a: two lines', `WARN node-d: ${long}`]);
      const json = JSON.parse((await sbIn(['ctl', '--server', url, 'status', '--json'])).stdout);
      expect(json.nodes.map((n: { warnings?: string[] }) => n.warnings)).toEqual([
        ['listener down', 'two\nlines'],
        [],
        undefined,
        [long],
      ]);
    } finally {
      server.close();
    }
  });

  // probe11 K8: after a rollback back to 3 the head read "config revision 3, rollout of 3 rolled-back" (the revision
  // in force shown as the one rolled back), and a rollback after a halt read "rolled-back", the halt by node-b gone.
  it('status head: a rollout rolled back after a halt keeps the halt; a rolled-back revision made the default again says so', async () => {
    const { createServer } = await import('node:http');
    const four = ['a', 'b', 'c', 'd'];
    const t = (i: number) => `2026-12-03T00:00:0${i}Z`;
    const at1: ConfigTargetState = { defaultRevision: 1, previousDefault: undefined, rollout: undefined };
    const complete = (s: ConfigTargetState, rev: number, i: number) =>
      stepRollout(
        startRollout(s, { configRevision: rev, waves: [four], pauseOnError: false, at: t(i) }),
        acks(rev, four),
        t(i),
      );
    const at3 = complete(complete(at1, 2, 1), 3, 2);
    const backTo3 = rollbackConfig(rollbackConfig(at3, undefined, t(3)), 3, t(4));
    // the state keeps the rolled-back rollout's own revision: it is 3, and 3 is in force again
    expect(backTo3).toMatchObject({ defaultRevision: 3, rollout: { configRevision: 3, status: 'rolled-back' } });
    let halted = startRollout(at3, { configRevision: 4, waves: [['b'], four], pauseOnError: false, at: t(5) });
    halted = stepRollout(halted, new Map([['b', { type: 'NACK', configRevision: 4, error: 'nft: bad' }]]), t(6));
    const haltedBack = rollbackConfig(halted, undefined, t(7));
    expect(haltedBack.rollout).toMatchObject({ status: 'rolled-back', haltedBy: { node: 'b', error: 'nft: bad' } });

    let config: ConfigTargetState = backTo3;
    const server = createServer((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ latestVersion: 4, rejectedTotal: 0, synced: true, config, nodes: [] })),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const head = async () => (await sbIn(['ctl', '--server', url, 'status'])).stdout.split('\n')[0];
    try {
      expect(await head()).toBe(
        'version 4, config revision 3, rollout of 3 rolled-back (wave 1/1), revision 3 made the default again since by a rollback, rejected objects 0',
      );
      config = haltedBack;
      expect(await head()).toBe(
        'version 4, config revision 3, rollout of 4 halted by b, then rolled back (wave 1/2), rejected objects 0',
      );
      config = halted;
      expect(await head()).toBe(
        'version 4, config revision 3, rollout of 4 halted by b (wave 1/2), rejected objects 0',
      );
      // -o json: the planner's state as it is (status rolled-back, haltedBy kept)
      config = haltedBack;
      const json = JSON.parse((await sbIn(['ctl', '--server', url, 'status', '--json'])).stdout);
      expect(json.config.rollout).toMatchObject({ status: 'rolled-back', haltedBy: { node: 'b' } });
    } finally {
      server.close();
    }
  });
});

const acks = (rev: number, ns: readonly string[]) =>
  new Map<string, NodeReport>(ns.map((n) => [n, { type: 'ACK', configRevision: rev }]));
