// probe10 H1: the targets bucket keeps every old target in its history, verbatim and validly
// signed, so anyone with the planner's NATS credentials (not its signing key) can put an old one
// back into a key. Running appliers ignore it (they hold a newer `issued`), but a restarted one
// used to follow it: version 2 -> 1, a Service gone from its dataplane. Now the applier persists
// the `issued` of what it followed with its ACK (--state-dir) and after a restart refuses an older
// entry, keeping what its kernel runs; a rollback (a new target, a new `issued`) still passes.
// Real nats-server, the service with a real state directory, the nftables dataplane over the fake runner.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Kvm } from '@nats-io/kv';
import { NftablesDataplane } from '../../../libs/dataplane/index.ts';
import { DEFAULT_TARGET_KEY, TARGETS_BUCKET, TargetStore } from '../../../libs/bus/index.ts';
import { startApplierService, type ApplierService } from '../../../services/applier/applier-service.ts';
import { Events, nodeCred, startBusWorld, type BusWorld } from '../../libs/bus/bus-harness.ts';
import { node, service, VersionMaker } from '../../libs/bus/fixtures.ts';
import { FakeNftRunner } from '../../support/fake-nft-runner.ts';

let world: BusWorld | undefined;
const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await world?.close();
  world = undefined;
});

/** The service's log lines, as events a test can wait on. */
function capturedLogger(): { logger: pino.Logger; lines: Events<Record<string, unknown>> } {
  const lines = new Events<Record<string, unknown>>();
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

describe('a restarted applier refuses a replayed old signed target (probe10 H1)', () => {
  it('keeps version 2 over a verbatim copy of version 1 put back into the key; a real rollback passes', async () => {
    const w = await startBusWorld({ nodes: ['n1'] });
    world = w;
    const m = new VersionMaker();
    for (const d of [
      m.next({ upsertServices: [service(1)], upsertNodes: [node('n1')] }),
      m.next({ upsertServices: [service(9)] }),
    ])
      await w.publisher.publishNext({ header: d.delta, delta: d.delta.delta, data: () => d.checkpoint().data });
    const kv = await new Kvm(w.planner).open(TARGETS_BUCKET);
    await w.targets.setDefaultTarget({ version: 1, configRevision: 0 });
    const old = (await kv.get(DEFAULT_TARGET_KEY))!.string();
    await w.targets.setDefaultTarget({ version: 2, configRevision: 0 });

    const dir = mkdtempSync(path.join(tmpdir(), 'sb-replay-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const runner = new FakeNftRunner();
    const dump = () => runner.dump('inet', 'switchboard');
    const start = (logger: pino.Logger): Promise<ApplierService> =>
      startApplierService({
        node: 'n1',
        nats: w.server.url,
        mode: 'nftables',
        stateDir: dir,
        dataplane: new NftablesDataplane({ runner, changeNotifications: false }),
        auth: nodeCred('n1'),
        verifier: w.verifier,
        heartbeatMs: 0,
        probe: { sample: 0 },
        logger,
      });

    const first = await start(pino({ level: 'silent' }));
    await w.received.waitFor((e) => e.kind === 'ack' && e.v.version === 2, 'ack 2');
    await first.stop();
    expect(dump()).toContain('10.96.0.10 . tcp . 80');
    const persisted = JSON.parse(readFileSync(path.join(dir, 'applied-n1.json'), 'utf8'));
    expect(persisted.followed[DEFAULT_TARGET_KEY]).toBeGreaterThan(JSON.parse(old).issued);

    await kv.put(DEFAULT_TARGET_KEY, old); // the replay: the old entry, signature and all
    const mark = w.received.mark();
    const { logger, lines } = capturedLogger();
    const second = await start(logger);
    cleanup.push(() => second.stop());
    const said = await lines.waitFor((l) => /older than this node followed/.test(String(l.msg)), 'the refusal');
    expect(String(said.reason)).toMatch(/target version 1 \(issued \d+\) in default is older/);
    expect(second.waitingFor()).toMatch(/not older than the one followed before/);
    expect(dump()).toContain('10.96.0.10 . tcp . 80'); // the dataplane keeps version 2's Service

    // a rollback is a new target with a new `issued`: followed (a store opened afresh: the
    // world's own one saw the foreign write as another planner's and refuses to write over it)
    const planner = await TargetStore.open({ nc: w.planner, signer: w.signer });
    await planner.setDefaultTarget({ version: 1, configRevision: 0 });
    await w.received.waitFor((e) => e.kind === 'ack' && e.v.version === 1, 'ack of the rollback', { from: mark });
    expect(w.received.all.slice(mark).filter((e) => e.kind === 'ack').length).toBe(1); // never acked the replay
    expect(dump()).not.toContain('10.96.0.10 . tcp . 80');
    expect(lines.all.filter((l) => /older than this node followed/.test(String(l.msg)))).toHaveLength(1);
  });
});
