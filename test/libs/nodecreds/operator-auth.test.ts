import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  connectBus,
  TargetStore,
  TARGETS_STREAM,
  VERSIONS_STREAM,
  watchCredentialRefusals,
} from '../../../libs/bus/index.ts';
import {
  generateAccountKeys,
  mintNodeCreds,
  mintRoleCreds,
  renderResolverConfig,
  serverResolver,
} from '../../../libs/nodecreds/nats-accounts.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

let server: NatsServerHandle | undefined;
const conns: NatsConnection[] = [];
let dir: string | undefined;
afterEach(async () => {
  for (const c of conns.splice(0)) await c.close().catch(() => {});
  await server?.stop();
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

function file(name: string, text: string): string {
  dir ??= mkdtempSync(path.join(tmpdir(), 'sb-creds-'));
  const f = path.join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
}

/** Permission violations the server reports to a connection. */
function violations(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status())
      if (s.type === 'error') seen.push(String((s as { error?: Error }).error?.message));
  })();
  return seen;
}

/** A nats-server in operator mode with fresh account keys, and a planner connected to it. */
async function operatorServer() {
  const keys = generateAccountKeys();
  server = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
  const planner = await connectBus({
    servers: server.url,
    name: 'planner',
    auth: { credsFile: file('planner.creds', await mintRoleCreds(keys, 'planner')) },
    // back 100 ms after a server restart, not after connectBus's backoff (250 ms doubling)
    extra: { reconnectDelayHandler: () => 100 },
  });
  conns.push(planner);
  return { keys, planner, url: server.url };
}

describe('operator-mode NATS with minted per-node user JWTs (Debian nats-server 2.9)', () => {
  it("node A's credentials ACK as A and cannot ACK, heartbeat or read targets as B; JetStream works for the account", async () => {
    const { keys, planner, url } = await operatorServer();
    const targets = await TargetStore.open({ nc: planner }); // JetStream KV: the account's JetStream limits are on
    await targets.setDefaultTarget({ version: 1, configRevision: 0 });
    await targets.setNodeTarget('node-b', { version: 2, configRevision: 0 });
    const acks: string[] = [];
    const sub = planner.subscribe('sb.ack.*', {
      callback: (_e, m) => {
        acks.push(`${m.subject} ${m.string()}`);
      },
    });
    await planner.flush();

    const a = await connectBus({
      servers: url,
      name: 'node-a',
      node: 'node-a',
      auth: { credsFile: file('a.creds', await mintNodeCreds(keys, 'node-a', 600)) },
    });
    conns.push(a);
    const seen = violations(a);
    a.publish('sb.ack.node-b', 'forged');
    a.publish('sb.hb.node-b', 'forged');
    a.publish('sb.ack.node-a', 'mine');
    await a.flush();
    await planner.flush();
    await expect.poll(() => acks).toEqual(['sb.ack.node-a mine']);
    expect(seen.some((s) => /Permissions Violation for Publish to "sb.ack.node-b"/.test(s))).toBe(true);
    expect(seen.some((s) => /Permissions Violation for Publish to "sb.hb.node-b"/.test(s))).toBe(true);
    const kv = await new Kvm(a).open('sb_targets', { allow_direct: true });
    expect((await kv.get('default'))?.json()).toMatchObject({ version: 1, configRevision: 0 }); // reading its targets is allowed
    await expect(kv.get('node.node-b')).rejects.toThrow(/Permissions Violation/);
    await expect(kv.put('node.node-a', '{}')).rejects.toThrow(/Permissions Violation/);
    sub.unsubscribe();
  });

  it('a node or observer naming $JS.API.STREAM.PURGE/DELETE as the reply of a permitted read changes no stream', async () => {
    const { keys, planner, url } = await operatorServer();
    const targets = await TargetStore.open({ nc: planner });
    await targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const jsm = await jetstreamManager(planner);
    await jsm.streams.add({ name: VERSIONS_STREAM, subjects: ['sb.v.>'], allow_direct: true });
    await jetstream(planner).publish('sb.v.delta.1', 'v1');
    const streams = [VERSIONS_STREAM, TARGETS_STREAM];
    const state = async () =>
      Promise.all(
        streams.map(
          async (s) => `${s}:${(await jsm.streams.info(s).catch(() => undefined))?.state.messages ?? 'gone'}`,
        ),
      );
    const before = await state();
    const node = await connectBus({
      servers: url,
      name: 'node-a',
      node: 'node-a',
      auth: { credsFile: file('a.creds', await mintNodeCreds(keys, 'node-a', 600)) },
    });
    const ctl = await connectBus({
      servers: url,
      name: 'ctl',
      auth: { credsFile: file('ctl.creds', await mintRoleCreds(keys, 'observer')) },
    });
    conns.push(node, ctl);
    const get = `$JS.API.DIRECT.GET.${VERSIONS_STREAM}`;
    for (const nc of [node, ctl]) {
      for (const s of streams) {
        nc.publish(get, JSON.stringify({ seq: 1 }), { reply: `$JS.API.STREAM.PURGE.${s}` });
        nc.publish(get, JSON.stringify({ seq: 999_999 }), { reply: `$JS.API.STREAM.DELETE.${s}` });
      }
      await nc.flush();
    }
    // answered after the requests above; then the state; then both still read
    for (const nc of [node, ctl]) await nc.request(get, JSON.stringify({ seq: 1 }), { timeout: 2000 }).catch(() => {});
    expect(await state()).toEqual(before);
    for (const nc of [node, ctl])
      expect((await nc.request(get, JSON.stringify({ seq: 1 }), { timeout: 5000 })).string()).toBe('v1');
  });

  it('an expired node credential is refused, and credentials from another operator are refused', async () => {
    const keys = generateAccountKeys();
    server = await startNatsServer({ jetstream: true, config: renderResolverConfig(await serverResolver(keys)) });
    const opts = { maxReconnectAttempts: 0, reconnect: false };
    await expect(
      connectBus({
        servers: server.url,
        name: 'x',
        auth: { credsFile: file('old.creds', await mintNodeCreds(keys, 'node-a', -60)) },
        extra: opts,
      }),
    ).rejects.toThrow(/Authorization|expired/i);
    const other = generateAccountKeys();
    await expect(
      connectBus({
        servers: server.url,
        name: 'y',
        auth: { credsFile: file('other.creds', await mintNodeCreds(other, 'node-a', 600)) },
        extra: opts,
      }),
    ).rejects.toThrow(/Authorization/i);
  });

  // probe16 I1/I2: the client closed the connection for good at the second refused credential in a
  // row (an expired one: the issuer or NATS away for half its lifetime) and at a .creds file it
  // could not parse at a reconnect: the renewed or repaired file was never read again.
  it('a garbled .creds file or an expired credential at a reconnect does not end the connection; the renewed file is taken', async () => {
    const { keys, planner, url } = await operatorServer();
    const acks: string[] = [];
    planner.subscribe('sb.ack.*', {
      callback: (_e, m) => {
        acks.push(m.subject);
      },
    });
    const credsFile = file('node.creds', await mintNodeCreds(keys, 'node-a', 600));
    const problems: (string | undefined)[] = [];
    const a = await connectBus({
      servers: url,
      name: 'node-a',
      auth: { credsFile },
      onAuthFileProblem: (p) => problems.push(p),
      extra: { reconnectDelayHandler: () => 100 },
    });
    conns.push(a);
    const said: (string | undefined)[] = [];
    watchCredentialRefusals(a, (why) => said.push(why));
    const refusals: string[] = [];
    const reconnects: number[] = [];
    void (async () => {
      for await (const s of a.status()) {
        if (s.type === 'error') refusals.push(String((s as { error?: Error }).error?.message));
        if (s.type === 'reconnect') reconnects.push(refusals.length);
      }
    })();

    writeFileSync(credsFile, 'not a creds file\n');
    await server!.restart();
    await expect.poll(() => reconnects.length, { timeout: 10_000 }).toBe(1); // with the credential read before
    expect(problems).toContain(
      `${credsFile}: not a NATS .creds file (unable to parse credentials); using the one read before`,
    );

    writeFileSync(credsFile, await mintNodeCreds(keys, 'node-a', -60));
    await server!.restart();
    await expect.poll(() => refusals.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
    expect(refusals.every((r) => /Authorization Violation|Authentication Expired/.test(r))).toBe(true);
    expect(a.isClosed()).toBe(false);

    // renewed, as another identity to tell which file is in use
    writeFileSync(credsFile, await mintNodeCreds(keys, 'node-z', 600));
    expect(problems.at(-1)).toBeUndefined();
    // what a process says: the server's words at each refusal, then undefined once taken again
    await expect.poll(() => said.at(-1), { timeout: 10_000 }).toBeUndefined();
    expect(said.length).toBeGreaterThan(1);
    expect(said.slice(0, -1).every((w) => /Authorization Violation|Authentication Expired/.test(w ?? ''))).toBe(true);
    await expect
      .poll(
        async () => {
          a.publish('sb.ack.node-z', 'new identity');
          await a.flush();
          return acks.includes('sb.ack.node-z');
        },
        { timeout: 10_000 },
      )
      .toBe(true);
  });
});
