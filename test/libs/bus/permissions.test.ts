import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createUser } from '@nats-io/jwt';
import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { jetstream } from '@nats-io/jetstream';
import {
  connectBus,
  nodePermissions,
  renderServerAuthConfig,
  TargetStore,
  TARGETS_BUCKET,
  TARGETS_STREAM,
  VersionPublisher,
  VERSIONS_STREAM,
} from '../../../libs/bus/index.ts';
import { logStreamName, logSubject } from '../../../libs/eventlog/index.ts';
import { nodeCred, PLANNER, startBusWorld, type BusWorld } from './bus-harness.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { node, service, VersionMaker } from './fixtures.ts';

let world: BusWorld | undefined;
let server: NatsServerHandle | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
  await server?.stop();
  server = undefined;
});

/** Collects the permission violations the server reports to this connection. */
function violations(nc: NatsConnection): string[] {
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status())
      if (s.type === 'error') seen.push(String((s as { error?: Error }).error?.message));
  })();
  return seen;
}

describe('per-node NATS permissions (generated server config)', () => {
  it('renders one user per node with only its own subjects', () => {
    const text = renderServerAuthConfig({
      planner: { user: 'p', password: 'x' },
      nodes: [
        { name: 'b.example', user: 'b', password: 'y' },
        { name: 'a', nkey: 'UABC' },
      ],
    });
    expect(text.indexOf('nkey: "UABC"')).toBeLessThan(text.indexOf('user: "b"')); // sorted by node
    expect(text).toContain('"sb.ack.b_example"');
    expect(nodePermissions('a').publish.allow.some((s) => s.startsWith('$KV.'))).toBe(false);
    expect(() =>
      renderServerAuthConfig({
        planner: { user: 'p', password: 'x' },
        nodes: [
          { name: 'a', nkey: 'U1' },
          { name: 'a', nkey: 'U2' },
        ],
      }),
    ).toThrow(/duplicate/);
  });

  it("a node cannot publish another node's ack, write targets, or read another node's target", async () => {
    world = await startBusWorld({ nodes: ['n1', 'n2'] });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    await world.targets.setNodeTarget('n2', { version: 1, configRevision: 0 });
    const nc = await connectBus({ servers: world.server.url, name: 'rogue-n1', node: 'n1', auth: nodeCred('n1') });
    try {
      const seen = violations(nc);
      const forged = {
        type: 'ACK',
        node: 'n2',
        version: 1,
        configRevision: 0,
        dataHash: 'x',
        nodeStateHash: 'y',
        mode: 'ipvs',
        kernelWrites: 0,
        timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
        at: 'now',
      };
      nc.publish('sb.ack.n2', JSON.stringify(forged));
      nc.publish('sb.hb.n2', '{}');
      // its own subject is allowed, but a payload naming n2 is rejected by the collector
      nc.publish('sb.ack.n1', JSON.stringify(forged));
      nc.publish('sb.ack.n1', JSON.stringify({ ...forged, node: 'n1' }));
      await nc.flush();
      await world.received.waitFor((e) => e.kind === 'ack' && e.v.node === 'n1', 'the legitimate ack');
      expect(world.received.all.filter((e) => e.v.node === 'n2')).toEqual([]);
      const kv = await new Kvm(nc).open('sb_targets', { allow_direct: true });
      await expect(kv.put('default', JSON.stringify({ version: 9, configRevision: 0 }))).rejects.toThrow(
        /Permissions Violation/,
      );
      await expect(kv.put('node.n1', JSON.stringify({ version: 9, configRevision: 0 }))).rejects.toThrow(
        /Permissions Violation/,
      );
      await expect(kv.get('node.n2')).rejects.toThrow(/Permissions Violation/);
      await expect(kv.watch({ key: 'node.n2' })).rejects.toThrow(/Permissions Violation/);
      await expect(kv.watch({ key: '>' })).rejects.toThrow(/Permissions Violation/);
      expect((await kv.get('default'))?.json()).toMatchObject({ version: 1, configRevision: 0 }); // reading is allowed
      // subscribing outside its own inbox prefix is refused
      const sub = nc.subscribe('sb.ack.*');
      const ended = (async () => {
        for await (const _ of sub) {
          /* nothing may arrive */
        }
      })();
      await expect(ended).rejects.toThrow(/Permissions Violation/);
      expect(seen.some((s) => s.includes('"sb.ack.n2"'))).toBe(true);
      expect(seen.some((s) => s.includes('"$KV.sb_targets.default"'))).toBe(true);
      const { targets } = world;
      expect((await targets.getTargets()).default).toEqual({ version: 1, configRevision: 0 });
    } finally {
      await nc.close();
    }
  });

  it('a node cannot create a consumer, so it cannot make the server deliver into the versions stream', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    await world.targets.setNodeTarget('n1', { version: 1, configRevision: 0 });
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const jsm = await jetstreamManager(world.planner);
    const before = (await jsm.streams.info('SB_VERSIONS')).state.messages;
    const nc = await connectBus({ servers: world.server.url, name: 'rogue-n1', node: 'n1', auth: nodeCred('n1') });
    try {
      // reproduced on the old permissions: a push consumer on the node's own key, delivering into sb.v.delta.2
      const body = JSON.stringify({
        stream_name: 'KV_sb_targets',
        config: {
          name: 'into-versions',
          filter_subject: '$KV.sb_targets.node.n1',
          deliver_subject: 'sb.v.delta.2',
          ack_policy: 'none',
          deliver_policy: 'last_per_subject',
        },
      });
      await expect(
        nc.request('$JS.API.CONSUMER.CREATE.KV_sb_targets.into-versions.$KV.sb_targets.node.n1', body, {
          timeout: 2000,
        }),
      ).rejects.toThrow(/Permissions Violation|timeout/i);
      await expect(jsm.consumers.info('KV_sb_targets', 'into-versions')).rejects.toThrow(/consumer not found/i);
      expect((await jsm.streams.info('SB_VERSIONS')).state.messages).toBe(before);
    } finally {
      await nc.close();
    }
  });

  it('a reply subject naming the JetStream API (purge, delete) changes nothing: nodes and observers cannot reach it', async () => {
    // NATS checks publish permissions on the subject, never on the reply subject, and JetStream
    // answers on whatever reply the requester chose, from inside the requester's account.
    const observer = { user: 'ctl', password: 'ctl-secret' };
    server = await startNatsServer({
      jetstream: true,
      config: renderServerAuthConfig({ planner: PLANNER, observer, nodes: [{ name: 'n1', ...nodeCred('n1') }] }),
    });
    const planner = await connectBus({ servers: server.url, name: 'planner', auth: PLANNER });
    const readers: NatsConnection[] = [];
    try {
      const { jetstreamManager } = await import('@nats-io/jetstream');
      const jsm = await jetstreamManager(planner);
      const publisher = await VersionPublisher.open({ nc: planner, checkpointEvery: 5 });
      const targets = await TargetStore.open({ nc: planner });
      const m = new VersionMaker();
      const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
      await publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
      await targets.setDefaultTarget({ version: 1, configRevision: 0 });
      const log = logStreamName('g');
      await jsm.streams.add({ name: log, subjects: [logSubject('g')] });
      await jetstream(planner).publish(logSubject('g'), 'row');
      const streams = [VERSIONS_STREAM, TARGETS_STREAM, log];
      const state = async () =>
        Promise.all(
          streams.map(
            async (s) => `${s}:${(await jsm.streams.info(s).catch(() => undefined))?.state.messages ?? 'gone'}`,
          ),
        );
      const before = await state();
      expect(before.every((s) => !s.endsWith(':0'))).toBe(true);
      const node1 = await connectBus({ servers: server.url, name: 'rogue-n1', node: 'n1', auth: nodeCred('n1') });
      readers.push(node1);
      const ctl = await connectBus({ servers: server.url, name: 'rogue-ctl', auth: observer });
      readers.push(ctl);
      const get = `$JS.API.DIRECT.GET.${VERSIONS_STREAM}`;
      const kvGet = `$JS.API.DIRECT.GET.${TARGETS_STREAM}.$KV.${TARGETS_BUCKET}.default`;
      for (const nc of readers) {
        for (const s of streams) {
          // an existing message is a valid "purge all" body; a missing one answers an empty 404,
          // a valid delete request
          nc.publish(get, JSON.stringify({ seq: 1 }), { reply: `$JS.API.STREAM.PURGE.${s}` });
          nc.publish(kvGet, '', { reply: `$JS.API.STREAM.PURGE.${s}` });
          nc.publish(get, JSON.stringify({ seq: 999_999 }), { reply: `$JS.API.STREAM.DELETE.${s}` });
        }
        await nc.flush();
      }
      // a read after the requests above is answered after them (same connection, same stream);
      // then the state, then that both may still read
      for (const nc of readers) await nc.request(get, JSON.stringify({ seq: 1 }), { timeout: 2000 }).catch(() => {});
      expect(await state()).toEqual(before);
      for (const nc of readers) {
        expect((await nc.request(get, JSON.stringify({ seq: 1 }), { timeout: 5000 })).data.length).toBeGreaterThan(0);
        expect((await nc.request(kvGet, '', { timeout: 5000 })).json()).toMatchObject({ version: 1 });
      }
    } finally {
      for (const nc of readers) await nc.close();
      await planner.close();
    }
  });

  it('a node that authenticates with an nkey seed file (--nkey-seed) follows its target and ACKs, only as itself', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sb-nkey-'));
    try {
      const n1 = createUser();
      const other = createUser(); // a seed no user of the config names
      const seed = (kp: typeof n1, name: string) => {
        const file = path.join(dir, name);
        writeFileSync(file, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
        return file;
      };
      server = await startNatsServer({
        jetstream: true,
        config: renderServerAuthConfig({ planner: PLANNER, nodes: [{ name: 'n1', nkey: n1.getPublicKey() }] }),
      });
      const planner = await connectBus({ servers: server.url, name: 'planner', auth: PLANNER });
      try {
        const targets = await TargetStore.open({ nc: planner });
        await targets.setDefaultTarget({ version: 1, configRevision: 0 });
        const nc = await connectBus({
          servers: server.url,
          name: 'n1',
          node: 'n1',
          auth: { nkeySeedFile: seed(n1, 'n1.nk') },
        });
        try {
          const seen = violations(nc);
          const kv = await new Kvm(nc).open(TARGETS_BUCKET, { allow_direct: true });
          expect((await kv.get('default'))?.json()).toMatchObject({ version: 1, configRevision: 0 });
          const acks = planner.subscribe('sb.ack.*');
          const got = (async () => {
            for await (const m of acks) return m.subject;
          })();
          await planner.flush();
          nc.publish('sb.ack.n2', 'forged');
          nc.publish('sb.ack.n1', 'mine');
          await nc.flush();
          expect(await got).toBe('sb.ack.n1'); // the forged one never reached the planner
          await expect.poll(() => seen.some((x) => x.includes('"sb.ack.n2"'))).toBe(true);
        } finally {
          await nc.close();
        }
        await expect(
          connectBus({
            servers: server.url,
            name: 'x',
            auth: { nkeySeedFile: seed(other, 'other.nk') },
            extra: { maxReconnectAttempts: 0, reconnect: false },
          }),
        ).rejects.toThrow(/Authorization/i);
      } finally {
        await planner.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('wrong credentials are refused', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    await expect(
      connectBus({
        servers: world.server.url,
        name: 'x',
        auth: { user: 'node-n1', password: 'nope' },
        extra: { maxReconnectAttempts: 0, reconnect: false },
      }),
    ).rejects.toThrow(/Authorization/i);
  });
});
