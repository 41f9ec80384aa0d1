// Node warnings in heartbeats (node10): an applier whose nftables change-notification listener is
// lost says so in its next heartbeat at once (`warnings`), while the supervisor's restarts fail;
// once one works the warning goes and a resync reads the whole table. In-process applier on a
// real nats-server; the kernel is the recording fake with a scripted listener (the real child on a
// real kernel: test/netns/dataplane-fault-repair.test.ts, "the notification listener killed").
// Short intervals: a few seconds.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { NftablesDataplane, type NftReadBack } from '../../../libs/dataplane/index.ts';
import { contentHash, DEFAULT_PROXY_CONFIG } from '../../../libs/model/index.ts';
import { startApplierService } from '../../../services/applier/applier-service.ts';
import { NodeWarnings } from '../../../services/applier/node-warnings.ts';
import { nodeCred, startBusWorld, type BusWorld } from '../../libs/bus/bus-harness.ts';
import { node, service, VersionMaker } from '../../libs/bus/fixtures.ts';
import { GenerationRunner } from '../../libs/dataplane/nftables/generation-runner.ts';

/** The fake kernel with a listener the test loses and lets start again; counts whole-table reads. */
class ListenedRunner extends GenerationRunner {
  lose: ((why: string) => void) | undefined;
  startable = true;
  wholeReads = 0;
  async watch(_f: string, _t: string, _d?: (why: string) => void, onLost?: (why: string) => void): Promise<void> {
    if (!this.startable) throw new Error('notification listener exited (code 3: EPERM)');
    this.lose = onLost;
  }
  override async listTable(family: string, table: string): Promise<NftReadBack | undefined> {
    this.wholeReads++;
    return super.listTable(family, table);
  }
}

let world: BusWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe('node warnings in heartbeats', () => {
  it('a lost nftables listener is a heartbeat warning until a restart works; then a whole-table resync', async () => {
    world = await startBusWorld({ nodes: ['n1'] });
    const m = new VersionMaker();
    const v = m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] });
    await world.publisher.publishNext({ header: v.delta, delta: v.delta.delta, data: () => v.checkpoint().data });
    // a config asking for nftables, the mode this applier is fixed to (else it warns of that too: fixed-mode-warning.test.ts)
    const nft = { ...DEFAULT_PROXY_CONFIG, mode: 'nftables' as const };
    await world.targets.putConfigRevision({
      revision: 1,
      config: nft,
      hash: contentHash(nft),
      reason: 'nft',
      createdAt: 'x',
    });
    await world.targets.setDefaultTarget({ version: 1, configRevision: 1 });
    const runner = new ListenedRunner();
    const said: string[] = [];
    const svc = await startApplierService({
      node: 'n1',
      nats: world.server.url,
      mode: 'nftables',
      dataplane: (hooks) =>
        new NftablesDataplane({
          runner,
          onListenerState: hooks.onListenerState,
          onResyncWanted: (why) => svc.session()?.driftSignalled(why),
          listenerSupervisor: { initialDelayMs: 100, maxDelayMs: 200, say: (l) => said.push(l) },
        }),
      auth: nodeCred('n1'),
      heartbeatMs: 200,
      resyncIntervalMs: 0, // only the restart's own request resyncs
      logger: pino({ level: 'silent' }),
    });
    try {
      await world.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack 1');
      const calm = await world.received.waitFor((e) => e.kind === 'hb' && e.v.appliedVersion === 1, 'a heartbeat');
      expect(calm.kind === 'hb' && calm.v.warnings).toBeUndefined(); // nothing to say: no field
      const from = world.received.all.length;
      runner.startable = false; // restarts fail: it stays down
      runner.lose!('notification listener exited (SIGKILL)');
      const warned = await world.received.waitFor((e) => e.kind === 'hb' && !!e.v.warnings, 'a warning', { from });
      expect(warned.kind === 'hb' && warned.v.warnings).toEqual([
        expect.stringMatching(
          /^nftables change-notification listener down since \d{4}-\d\d-\d\dT[\d:.]+Z \(notification listener exited \(SIGKILL\)\): our table deleted or flushed is not noticed at once/,
        ),
      ]);
      expect(warned.kind === 'hb' && warned.v.healthy).toBe(true); // a warning is no failure
      // still down a beat later (its restarts fail): every heartbeat says so, not only the first
      const at = world.received.all.indexOf(warned) + 1;
      const again = await world.received.waitFor((e) => e.kind === 'hb', 'the next heartbeat', { from: at });
      expect(again.kind === 'hb' && again.v.warnings).toEqual(warned.kind === 'hb' && warned.v.warnings);
      const readsBefore = runner.wholeReads;
      runner.startable = true;
      const from2 = world.received.all.length;
      await world.received.waitFor((e) => e.kind === 'hb' && !e.v.warnings, 'the warning gone', { from: from2 });
      await waitUntil(() => runner.wholeReads > readsBefore, 'a whole-table read after the restart');
      expect(said).toEqual([
        'nftables change-notification listener down (notification listener exited (SIGKILL)): restarting in 100 ms; a full resync follows its restart',
        expect.stringMatching(
          /^nftables change-notification listener back after \d+ ms \(\d+ restart attempts?; lost: notification listener exited \(SIGKILL\)\): full resync$/,
        ),
      ]);
    } finally {
      await svc.stop();
    }
  }, 20_000);

  it('keeps within the wire bounds: at most 8 entries, each cut to 1000 characters', () => {
    const w = new NodeWarnings();
    w.set('forward-drop', 'x'.repeat(5000));
    expect(w.list()[0]!.length).toBeLessThanOrEqual(1000);
    expect(w.list()[0]).toMatch(/^x+… \[\d+ more characters\]$/);
    let changes = 0;
    const counted = new NodeWarnings(() => changes++);
    counted.set('forward-drop', 'a');
    counted.set('forward-drop', 'a'); // unchanged: no extra heartbeat
    counted.set('forward-drop', undefined);
    expect(changes).toBe(2);
    expect(counted.list()).toEqual([]);
  });
});

async function waitUntil(f: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
