import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { StaleLeaderError } from '../../../libs/bus/index.ts';
import { claimStep } from '../../../services/planner/claim-step.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';

describe('claimStep: a new leader retries one step of its claim while its lease holds (probe5 H1)', () => {
  const failing = (fails: Error[]) => {
    let calls = 0;
    return {
      run: async () => {
        const e = fails[calls++];
        if (e) throw e;
        return 'done';
      },
      calls: () => calls,
    };
  };

  it('a transient failure (a request nobody answered) is retried; the result comes back', async () => {
    const f = failing([new Error('timeout'), new Error('503 no responders')]);
    const said: string[] = [];
    await expect(
      claimStep('reading x', f.run, { stopIf: () => undefined, onRetry: (l) => said.push(l), pauseMs: 5 }),
    ).resolves.toBe('done');
    expect(f.calls()).toBe(3);
    expect(said).toEqual([
      'reading x: timeout; retrying (the lease is held)',
      'reading x: 503 no responders; retrying (the lease is held)',
    ]);
  });

  it('not retried once the lease for the term is gone: the error names the step, the tries and why', async () => {
    const f = failing([new Error('timeout'), new Error('timeout'), new Error('timeout')]);
    let held = 2;
    const err = await claimStep('claiming the versions stream', f.run, {
      stopIf: () => (held-- > 0 ? undefined : 'the lease for term 7 is no longer held'),
      pauseMs: 5,
    }).catch((e: Error) => e);
    expect(f.calls()).toBe(3);
    expect((err as Error).message).toMatch(
      /^claiming the versions stream: timeout \(3 tries in \d+ s\); the lease for term 7 is no longer held$/,
    );
  });

  it('a fence or a refusal is not retried', async () => {
    const fence = failing([new StaleLeaderError('versions stream claimed by planner b in term 9')]);
    const err = await claimStep('claiming the versions stream', fence.run, { stopIf: () => undefined }).catch(
      (e: Error) => e,
    );
    expect(fence.calls()).toBe(1);
    expect((err as Error).message).toBe('claiming the versions stream: versions stream claimed by planner b in term 9');
    expect((err as Error).cause).toBeInstanceOf(StaleLeaderError);
  });

  it('gives up after withinMs even while the lease holds', async () => {
    const f = failing(Array.from({ length: 50 }, () => new Error('timeout')));
    const err = await claimStep('reading x', f.run, { stopIf: () => undefined, withinMs: 100, pauseMs: 20 }).catch(
      (e: Error) => e,
    );
    expect(f.calls()).toBeGreaterThan(1);
    expect(f.calls()).toBeLessThan(5);
    expect((err as Error).message).toMatch(/^reading x: timeout \(\d tries in \d+ s\)$/);
  });
});

describe("NatsPlannerBus.claim on a real nats-server: no consumer on the claim's path", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let witness: NatsConnection;
  beforeAll(async () => {
    nats = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: nats.url });
    witness = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await witness?.close();
    await nats?.stop();
  });

  it("re-reads every node key and the newest issued stamp from the stream's leader (stream info, message gets), never a consumer (kv.keys made one: placed on a dead server, the claim timed out) nor a direct get (any replica answers one, a frozen one included)", async () => {
    const old = await NatsPlannerBus.open({ nc });
    await old.claim(1, 'a');
    await old.setDefaultTarget({ version: 1, configRevision: 0 });
    await old.setNodeTarget('n1', { version: 1, configRevision: 0 });
    await old.setNodeTarget('n.2', { version: 1, configRevision: 0 });
    // what the claim asks JetStream for, seen on the wire: consumer creations are what must not be there
    const api: string[] = [];
    const sub = witness.subscribe('$JS.API.>', { callback: (_e, m) => void api.push(m.subject) });
    await witness.flush();
    const next = await NatsPlannerBus.open({ nc });
    api.length = 0;
    await next.claim(2, 'b');
    await witness.flush();
    sub.unsubscribe();
    expect(api.filter((s) => s.includes('.CONSUMER.'))).toEqual([]);
    expect(api.some((s) => s.startsWith('$JS.API.STREAM.INFO.KV_sb_targets'))).toBe(true);
    // the default and both node keys, each asked of the leader
    expect(api.filter((s) => s === '$JS.API.STREAM.MSG.GET.KV_sb_targets')).toHaveLength(3);
    // nor of the versions stream: the claim's read of the newest delta goes to its leader too
    expect(api.filter((s) => s.startsWith('$JS.API.DIRECT.GET.'))).toEqual([]);
    expect(api.some((s) => s === '$JS.API.STREAM.MSG.GET.SB_VERSIONS')).toBe(true);
    // it learned every key's revision at the claim: a write made since (the old leader's, no lease
    // stops it here) fences its write of that key, and a key nobody wrote since takes its write
    await old.setNodeTarget('n1', { version: 3, configRevision: 0 });
    await expect(next.setNodeTarget('n1', { version: 2, configRevision: 0 })).rejects.toThrow(
      /targets bucket: node\.n1 was written by another planner/,
    );
    await expect(next.setNodeTarget('n.2', { version: 2, configRevision: 0 })).resolves.toBeUndefined();
    await next.close();
    await old.close();
  });
});
