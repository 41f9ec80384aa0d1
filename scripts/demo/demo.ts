/**
 * The Switchboard demo driver (scripts/demo.sh runs it). As root with network namespaces it
 * builds a three-node cluster with real traffic; otherwise it says why and runs the same story
 * with dry-run appliers. Usage: demo.ts [--keep] [--dry-run] | --cleanup DIR
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderServerAuthConfig } from '../../libs/bus/index.ts';
import { DemoResources, run } from './demo-resources.ts';
import { CLUSTER_CIDR, DEMO_NODES, DemoLab, HOST_IP, netnsUnavailable, type ProbeResult } from './demo-lab.ts';
import { DemoError, Narrator } from './narrator.ts';
import { PlannerClient } from './planner-client.ts';

const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(repo, 'bin', 'switchboard');
const REQUESTS = 30;
const say = new Narrator();

interface Options {
  keep: boolean;
  dryRun: boolean;
  cleanup?: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { keep: false, dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--keep') o.keep = true;
    else if (a === '--dry-run') o.dryRun = true;
    else if (a === '--cleanup' && argv[i + 1]) o.cleanup = argv[++i];
    else {
      process.stderr.write(`demo: unknown argument ${a} (usage: demo.sh [--keep] [--dry-run] | --cleanup DIR)\n`);
      process.exit(2);
    }
  }
  return o;
}

function freePort(host: string): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
      .once('error', rej)
      .listen(0, host, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => res(p));
      });
  });
}

async function waitTcp(host: string, port: number, what: string, log: string, seconds = 15): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, host, () => {
        c.destroy();
        r(true);
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new DemoError(`${what} did not listen on ${host}:${port} within ${seconds} s; see ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function cli(line: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return run(process.execPath, [CLI, ...line], { timeoutMs: 60_000, env });
}

function printTally(what: string, r: ProbeResult): void {
  say.say(`${REQUESTS} requests to ${what}:`);
  for (const [pod, n] of Object.entries(r.pods).sort()) say.plain(`pod ${pod}: ${n} requests`);
  if (r.failed) say.plain(`failed: ${r.failed} requests (${r.errors.join('; ')})`);
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.cleanup) {
    let res: DemoResources;
    try {
      res = DemoResources.load(o.cleanup);
    } catch (e) {
      say.fail((e as Error).message);
      return 1;
    }
    const problems = await res.cleanup();
    res.removeFiles(false);
    for (const p of problems) say.fail(p);
    say.ok(`removed the demo in ${o.cleanup}`);
    return problems.length ? 1 : 0;
  }
  const why = o.dryRun ? '--dry-run was given' : await netnsUnavailable();
  const real = why === undefined;
  if (!real)
    say.say(`No real traffic: ${why}. Running the dry-run story (appliers run the whole protocol, kernel untouched).`);

  const work = mkdtempSync(join(tmpdir(), 'switchboard-demo.'));
  mkdirSync(join(work, 'logs'));
  const res = new DemoResources(work);
  const logs = join(work, 'logs');
  let finished = false;
  let stopping: Promise<void> | undefined;
  const stop = (keepLogs: boolean) =>
    (stopping ??= (async () => {
      for (const p of await res.cleanup()) say.fail(p);
      res.removeFiles(keepLogs);
      if (keepLogs) say.say(`logs kept in ${logs}`);
    })());
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (finished && o.keep) process.exit(0);
      say.say(`${sig}: stopping every process and removing namespaces and files`);
      void stop(false).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  say.say(`work dir ${work}`);
  try {
    await story(o, real, res, work);
    finished = true;
    if (o.keep) return 0;
    say.step('done: stopping every process, removing namespaces and files');
    await stop(false);
    return 0;
  } catch (e) {
    say.fail(e instanceof DemoError ? e.message : ((e as Error).stack ?? String(e)));
    await stop(true);
    return 1;
  }
}

async function story(o: Options, real: boolean, res: DemoResources, work: string): Promise<void> {
  const logs = join(work, 'logs');
  const lab = real ? new DemoLab(res) : undefined;
  const natsHost = real ? HOST_IP : '127.0.0.1';
  // ---- setup -------------------------------------------------------------------------------
  say.step('setup: the demo cluster');
  const manifests = join(work, 'manifests');
  cpSync(join(repo, 'examples', 'demo'), manifests, { recursive: true });
  if (lab) {
    say.say(
      `network: bridge in namespace ${lab.lan}; nodes ${lab.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}; client ${lab.client}`,
    );
    await lab.start();
    await lab.addPod('web-a', 'node-a', '10.50.1.2', 9000);
    await lab.addPod('web-b', 'node-b', '10.50.2.2', 9000);
    say.ok(
      'pods web-a (10.50.1.2 on node-a) and web-b (10.50.2.2 on node-b) serve HTTP on :9000 and answer with their name',
    );
  }
  const secret = () => randomBytes(12).toString('hex');
  const tokens = { operator: secret(), viewer: secret() };
  writeFileSync(
    join(work, 'tokens'),
    `${tokens.operator} demo-operator operator\n${tokens.viewer} demo-viewer viewer\n`,
    { mode: 0o600 },
  );
  const natsPass = { planner: secret(), ...Object.fromEntries(DEMO_NODES.map((n) => [n.name, secret()])) } as Record<
    string,
    string
  >;
  const natsPort = await freePort(real ? '127.0.0.1' : natsHost);
  writeFileSync(
    join(work, 'nats.conf'),
    [
      `listen: "${natsHost}:${natsPort}"`,
      `jetstream { store_dir: "${join(work, 'jetstream')}" }`,
      renderServerAuthConfig({
        planner: { user: 'planner', password: natsPass.planner! },
        nodes: DEMO_NODES.map((n) => ({ name: n.name, user: n.name, password: natsPass[n.name]! })),
      }),
    ].join('\n'),
    { mode: 0o600 },
  );
  const nats = `nats://${natsHost}:${natsPort}`;
  say.say(
    `nats-server (JetStream) on ${nats}; each node may publish only its own ACKs and heartbeats and read only its own target`,
  );
  const natsLog = res.spawn('nats', natsBinary(), ['-c', join(work, 'nats.conf')]).log;
  await waitTcp(natsHost, natsPort, 'nats-server', natsLog);

  const httpPort = await freePort('127.0.0.1');
  writeFileSync(join(work, 'proxy-config.yaml'), `clusterCIDR: ${CLUSTER_CIDR}\n`);
  const planner = res.spawn(
    'planner',
    process.execPath,
    [
      CLI,
      'planner',
      '--manifests',
      manifests,
      '--nats',
      nats,
      '--nats-user',
      'planner',
      '--db',
      join(work, 'switchboard.db'),
      '--http',
      `127.0.0.1:${httpPort}`,
      '--token-file',
      join(work, 'tokens'),
      '--config',
      join(work, 'proxy-config.yaml'),
      '--signing-key',
      join(work, 'signing-key.pem'),
    ],
    { env: { ...process.env, SWITCHBOARD_NATS_PASSWORD: natsPass.planner } },
  );
  const api = new PlannerClient(
    `http://127.0.0.1:${httpPort}`,
    tokens.operator,
    `${logs}/ (planner.log, applier-*.log)`,
  );
  say.say(`planner on ${manifests} (examples/demo), event log ${join(work, 'switchboard.db')}, API ${api.url}`);
  say.waiting('the planner to publish version 1 (GET /readyz; the first start compiles TypeScript)', 90);
  await Promise.race([
    api.until('planner ready (GET /readyz)', 90, async () =>
      (await fetch(`${api.url}/readyz`).catch(() => undefined))?.ok ? true : undefined,
    ),
    planner.exited.then((c) => {
      throw new DemoError(`the planner exited (code ${c}) before it was ready; see ${planner.log}`);
    }),
  ]);
  say.ok(
    "planner ready: version 1 is on the stream, signed with the planner's Ed25519 key (appliers drop anything it did not sign)",
  );

  const nodes = DEMO_NODES.map((n) => n.name);
  for (const n of lab?.nodes ?? DEMO_NODES.map((x) => ({ ...x, ns: undefined }))) {
    res.spawn(
      `applier-${n.name}`,
      process.execPath,
      [
        CLI,
        'applier',
        '--node',
        n.name,
        '--nats',
        nats,
        '--user',
        n.name,
        '--mode',
        real ? 'auto' : 'dry-run',
        '--state-dir',
        join(work, 'state', n.name),
        '--heartbeat',
        '1000',
        '--planner-key',
        join(work, 'signing-key.pem.pub'),
      ],
      { netns: n.ns, env: { ...process.env, SWITCHBOARD_NATS_PASSWORD: natsPass[n.name] } },
    );
  }
  say.say(
    `appliers: ${nodes.join(', ')} ${real ? 'in their namespaces, --mode auto (IPVS where the kernel has it, nftables otherwise)' : '--mode dry-run'}`,
  );
  say.waiting('every node to ACK the latest version', 120);
  let st = await api.allSynced(nodes, 120);
  say.ok(
    `every node SYNCED at version ${st.latestVersion}; running mode: ${st.nodes.map((r) => `${r.node} ${r.mode}`).join(', ')}`,
  );
  say.command('switchboard ctl status', await cli(['ctl', '--server', api.url, '--token', tokens.viewer, 'status']));

  // ---- a. traffic ----------------------------------------------------------------------------
  const beforeScale = st.latestVersion;
  say.step(`a. ${REQUESTS} requests from the client to the ClusterIP and to a NodePort`);
  if (lab) {
    const cip = await lab.probe('http://10.100.0.1:80/', REQUESTS);
    printTally('ClusterIP 10.100.0.1:80 (default/web)', cip);
    const np = await lab.probe('http://10.99.0.11:31000/', REQUESTS);
    printTally('NodePort 10.99.0.11:31000 (node-b)', np);
    if (cip.failed || np.failed || Object.keys(cip.pods).length < 2)
      throw new DemoError(`traffic did not reach both pods: ${JSON.stringify({ cip, np })}; logs in ${logs}`);
  } else say.say('(dry-run: no packets; the nodes ACKed what they would program)');

  // ---- b. scale up ---------------------------------------------------------------------------
  say.step('b. scale up: a new endpoint → a new version → every node ACKs → the new pod answers');
  if (lab) await lab.addPod('web-c', 'node-c', '10.50.3.2', 9000);
  writeFileSync(
    join(manifests, 'web-scale-up.yaml'),
    [
      'apiVersion: discovery.k8s.io/v1',
      'kind: EndpointSlice',
      'metadata: {name: web-scale-up, namespace: default, labels: {kubernetes.io/service-name: web}}',
      'addressType: IPv4',
      'ports: [{name: http, port: 9000, protocol: TCP}]',
      'endpoints:',
      '  - {addresses: [10.50.3.2], nodeName: node-c, conditions: {ready: true}}',
      '',
    ].join('\n'),
  );
  say.say('wrote EndpointSlice web-scale-up (10.50.3.2 on node-c) into the manifests directory');
  say.waiting('the planner to make a new version', 30);
  const afterScale = await api.until('a new version after the scale-up', 30, async () => {
    const s = await api.status();
    return s.latestVersion > beforeScale ? s.latestVersion : undefined;
  });
  say.waiting(`every node to ACK version ${afterScale}`, 60);
  st = await api.allSynced(nodes, 60);
  say.ok(`version ${afterScale}: ${st.nodes.map((r) => `${r.node} ACKed`).join(', ')}`);
  if (lab) {
    const r = await lab.probe('http://10.100.0.1:80/', REQUESTS);
    printTally('ClusterIP 10.100.0.1:80', r);
    if (!r.pods['web-c']) throw new DemoError(`the new pod web-c got none of ${REQUESTS} requests; logs in ${logs}`);
    say.ok('web-c answers');
  }

  // ---- c. config rollout that one node refuses ---------------------------------------------
  say.step('c. config rollout in waves (1 node, then all): scheduler sh (source hashing)');
  const rolloutStart = await api.post<{ revision: number }>('/config', {
    change: { scheduler: 'sh' },
    waves: '1,100%',
    reason: 'demo: clients should stick to one pod',
  });
  say.say(`config revision ${rolloutStart.revision} rolls out in waves 1,100%`);
  const fromRev = st.nodes[0]!.appliedConfigRevision!;
  // Only a node that fell back to nftables refuses; where the kernel has IPVS the rollout completes.
  const refuses = real && st.nodes.find((n) => n.node === 'node-a')?.mode === 'nftables';
  if (refuses) {
    say.say("a node without IPVS cannot keep source hashing with nftables: the first wave's node must NACK");
    say.waiting('the rollout to halt on a NACK', 60);
    const halted = await api.until(
      'the rollout halted by a NACK',
      60,
      async () => {
        const s = await api.status();
        return s.config.rollout?.status === 'halted' ? s.config.rollout : undefined;
      },
      async () => JSON.stringify((await api.status()).config.rollout ?? null),
    );
    say.ok(
      `rollout halted: ${halted.haltedBy!.node} NACKed revision ${halted.configRevision}: ${halted.haltedBy!.error}`,
    );
    say.plain(`rollout halted by ${halted.haltedBy!.node}`);
    say.waiting(`every node back on config revision ${fromRev} (the rollback is automatic)`, 60);
    await api.allSynced(nodes, 60, fromRev);
    say.ok(`rolled back by itself: every node SYNCED on revision ${fromRev}`);
    if (lab) {
      const r = await lab.probe('http://10.100.0.1:80/', REQUESTS);
      printTally('ClusterIP 10.100.0.1:80 after the halt', r);
      if (r.failed)
        throw new DemoError(`traffic was affected by the halted rollout (${r.failed} failed); logs in ${logs}`);
      say.ok('traffic unaffected');
    }
  } else {
    say.say(
      real
        ? '(node-a runs IPVS, which has source hashing: the rollout completes wave by wave; then the operator rolls it back)'
        : '(dry-run appliers refuse nothing: the rollout completes wave by wave; then the operator rolls it back)',
    );
    say.waiting('the rollout to complete', 60);
    await api.until('the rollout completed', 60, async () =>
      (await api.status()).config.rollout?.status === 'completed' ? true : undefined,
    );
    await api.post('/rollback', { reason: 'demo: roll the scheduler change back' });
    await api.allSynced(nodes, 60, fromRev);
    say.ok(`completed, then rolled back: every node on revision ${fromRev}`);
  }

  // ---- d. pin ---------------------------------------------------------------------------------
  say.step(`d. pin to version ${beforeScale} (before the scale-up), then unpin`);
  const pinned = await api.post<{ version: number | null }>('/pin', {
    version: beforeScale,
    reason: 'demo: hold while investigating',
  });
  say.say(`pinned: version ${pinned.version} carries version ${beforeScale}'s content`);
  say.waiting('every node to ACK the pinned content', 60);
  await api.allSynced(nodes, 60);
  if (lab) {
    const r = await lab.probe('http://10.100.0.1:80/', REQUESTS);
    printTally('ClusterIP 10.100.0.1:80 while pinned', r);
    if (r.pods['web-c'])
      throw new DemoError(`web-c still answers while pinned to version ${beforeScale}; logs in ${logs}`);
    say.ok('traffic follows the pin: web-c is out');
  }
  await api.post('/unpin', { reason: 'demo: done investigating' });
  say.waiting('every node to ACK the live content again', 60);
  await api.allSynced(nodes, 60);
  if (lab) {
    const r = await lab.probe('http://10.100.0.1:80/', REQUESTS);
    printTally('ClusterIP 10.100.0.1:80 after unpin', r);
    if (!r.pods['web-c']) throw new DemoError(`web-c does not answer after unpin; logs in ${logs}`);
    say.ok('unpinned: web-c is back');
  }

  // ---- e. audit -------------------------------------------------------------------------------
  say.step(`e. audit: what changed between versions ${beforeScale} and ${afterScale}, and who did what`);
  const db = join(work, 'switchboard.db');
  say.command(
    `switchboard ctl diff ${beforeScale} ${afterScale}`,
    await cli(['ctl', '--server', api.url, '--token', tokens.viewer, 'diff', String(beforeScale), String(afterScale)]),
  );
  say.command('switchboard audit service default/web', await cli(['audit', '--db', db, 'service', 'default/web']));
  say.command('switchboard audit ops', await cli(['audit', '--db', db, 'ops']));
  say.command('switchboard db verify', await cli(['db', 'verify', '--db', db]));

  if (o.keep) {
    say.step('left running (--keep)');
    say.say(`console (operator): ${api.url}/ui/#token=${tokens.operator}`);
    say.say(`console (viewer):   ${api.url}/ui/#token=${tokens.viewer}`);
    say.say(`tokens: operator ${tokens.operator}, viewer ${tokens.viewer} (file ${join(work, 'tokens')})`);
    say.say(`status:  bin/switchboard ctl --server ${api.url} --token ${tokens.viewer} status`);
    if (lab) say.say(`traffic: ip netns exec ${lab.client} node scripts/demo/http-probe.mjs http://10.100.0.1/ 30`);
    say.say(`audit:   bin/switchboard audit --db ${db} ops`);
    say.say(`logs:    ${logs}`);
    say.say(`stop and remove everything: bash scripts/demo.sh --cleanup ${work}`);
  }
}

function natsBinary(): string {
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'])
    if (existsSync(p)) return p;
  return 'nats-server';
}

process.exitCode = await main();
