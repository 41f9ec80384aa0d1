import { createHash, generateKeyPairSync } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signerFromKey } from '../../../libs/bus/index.ts';
import {
  FencedError,
  createLogReplicator,
  logSubject,
  rowCount,
  type EventLog,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { LogStreamReader, encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { nodeEvent } from './support/node-event.ts';
import { caughtUpWith, writeHistory } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// probe10 H11: the group's log stream was hash-chained but not signed, so whoever may publish on
// sb.log.<group> (the planner's NATS user, not its key) appended a batch continuing the chain and
// every follower imported its rows as real watch events.

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});

const groupKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);

async function replica(group: string, lines: string[], signed: boolean): Promise<{ log: EventLog; r: LogReplicator }> {
  const log = await openLog(tmp.file());
  const r = await createLogReplicator({
    log,
    nc,
    group,
    replicas: 1,
    id: `r${lines.length}`,
    logger: (l) => lines.push(l),
    appendTimeoutMs: 2000,
    ...(signed ? { signer: groupKey } : {}),
  });
  return { log, r };
}

/** What the forger writes: its own file's batch from the group's end, encoded as the leader would but unsigned. */
async function publishForgery(group: string, forger: EventLog, from: EventLog, term: number): Promise<void> {
  forger.appendEvents([{ ...nodeEvent('forged', 9001), uid: 'u-forged' }]);
  const batch = forger.exportRows(from.position());
  expect(rowCount(batch.to)).toBe(rowCount(from.position()) + 1); // it continues the chain
  const js = jetstream(nc);
  for (const part of encodeBatch(batch, term, 1024 * 1024)) {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(part.headers)) h.set(k, v);
    await js.publish(logSubject(group), part.payload, { headers: h });
  }
}

describe('signed log stream (one nats-server, real SQLite files)', () => {
  it('a batch continuing the chain but not signed by the group key is refused with one line, not applied; the next genuine batch is', async () => {
    const g = `signed-${process.pid}`;
    const lines: string[] = [];
    const a = await replica(g, lines, true);
    const b = await replica(g, lines, true);
    // the forger holds NATS credentials, not the key: it follows the stream (it checks nothing)
    const f = await replica(g, [], false);
    try {
      await a.r.claim(1);
      const fb = b.r.follow();
      await fb.caughtUp;
      await writeHistory(a.log, { seed: 5, steps: 4, after: () => a.r.flush() });
      await caughtUpWith(b, a, 'the follower of a signed group replicates');
      const ff = f.r.follow();
      await caughtUpWith(f, a, "the forger's copy");
      await ff.stop();

      // a term marker signed with another key, then an unsigned batch of the current term continuing the chain
      const h = natsHeaders();
      h.set('Sb-Log', 'term');
      h.set('Sb-Log-Term', '2');
      h.set('Sb-Log-Rows', String(rowCount(a.log.position())));
      h.set('Sb-Log-Sig', signerFromKey(generateKeyPairSync('ed25519').privateKey).sign('sb-log')); // another key's
      await jetstream(nc).publish(logSubject(g), new TextEncoder().encode('{"term":2,"holder":"mallory"}'), {
        headers: h,
      });
      await publishForgery(g, f.log, a.log, 1);
      const refused = () => lines.filter((l) => / refused: /.test(l));
      const deadline = Date.now() + 10_000;
      while (refused().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20)); // polling the follower's log lines
      expect(refused(), lines.join('\n')).toHaveLength(2);
      expect(refused()[0]).toMatch(/seq \d+: skipped: term marker 2 refused: its signature is not the group's/);
      expect(refused()[1]).toMatch(/seq \d+: skipped: batch \w+ from seq \d+ refused: not signed .*\(not applied\)$/);
      expect(b.log.events().map((e) => e.name)).not.toContain('forged');

      // the forgery moved the stream's last seq: the leader's next flush is fenced (its row is
      // dropped by the re-claim, as any fenced leader's unsent rows), and a re-claim goes on after it
      a.log.appendEvents([nodeEvent('fenced', 9002)]);
      await expect(a.r.flush()).rejects.toBeInstanceOf(FencedError);
      await a.r.claim(3);
      a.log.appendEvents([nodeEvent('genuine', 9003)]);
      await a.r.flush();
      await caughtUpWith(b, a, 'the genuine batch after the forgery');
      const names = b.log.events().map((e) => e.name);
      expect(names).toContain('genuine');
      expect(names).not.toContain('forged');
      await fb.stop();
    } finally {
      for (const x of [a, b, f]) {
        await x.r.close();
        x.log.close();
      }
    }
  }, 30_000);

  it('a new empty replica does not start its copy at the first signed batch after unsigned ones (a release before signed logs): it says so and takes nothing', async () => {
    const g = `upgraded-${process.pid}`;
    const lines: string[] = [];
    const old = await replica(g, [], false);
    await old.r.claim(1);
    await writeHistory(old.log, { seed: 9, steps: 3, after: () => old.r.flush() });
    await old.r.close();
    // the same file, upgraded in place: it leads the next term and signs
    const a = {
      log: old.log,
      r: await createLogReplicator({ log: old.log, nc, group: g, replicas: 1, signer: groupKey }),
    };
    const n = await replica(g, lines, true);
    try {
      await a.r.claim(2);
      a.log.appendEvents([nodeEvent('after-upgrade', 9100)]);
      await a.r.flush();
      const fn = n.r.follow();
      const said = () => lines.find((l) => /not applied: a batch from \d+ rows after messages refused/.test(l));
      const deadline = Date.now() + 10_000;
      while (!said() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20)); // polling the replica's log lines
      expect(said(), lines.join('\n')).toBeDefined();
      expect(lines.filter((l) => / refused: not signed/.test(l)).length).toBeGreaterThan(0);
      expect(n.log.events()).toEqual([]);
      await fn.stop();
    } finally {
      for (const x of [a, n]) {
        await x.r.close();
        x.log.close();
      }
    }
  }, 30_000);

  it('a batch in several parts is signed once and checked once joined, with its first seq; one part altered, it is refused', async () => {
    const log = groupKey;
    const signed: string[] = [];
    const file = await openLog(tmp.file());
    file.appendEvents(Array.from({ length: 8 }, (_, i) => nodeEvent(`n${i}`, 100 + i)));
    const batch = file.exportRows(file.position(), { whole: true });
    file.close();
    const parts = encodeBatch(batch, 4, 512, (m) => {
      signed.push(m.kind);
      return log.sign(
        `${m.term}/${m.rows}/${m.payloadDigest ?? createHash('sha256').update(m.payload!).digest('hex')}`,
      );
    });
    expect(parts.length).toBeGreaterThan(2);
    expect(signed).toEqual(['rows']); // once per batch, on the part that completes it
    const read = (check: ConstructorParameters<typeof LogStreamReader>[0], alter = false) => {
      const reader = new LogStreamReader(check);
      return parts.flatMap((p, i) =>
        reader.read(10 + i, (k) => p.headers[k], alter && i === 0 ? Buffer.from(p.payload).fill(32, 0, 1) : p.payload),
      );
    };
    const ok = read((m, sig) =>
      sig ===
        log.sign(`${m.term}/${m.rows}/${m.payloadDigest ?? createHash('sha256').update(m.payload!).digest('hex')}`) &&
      m.seq === 10
        ? undefined
        : 'bad',
    );
    expect(ok.map((i) => i.kind)).toEqual(['batch']); // checked over all parts, with the first part's seq
    const altered = read(
      (m, sig) =>
        sig ===
        log.sign(`${m.term}/${m.rows}/${m.payloadDigest ?? createHash('sha256').update(m.payload!).digest('hex')}`)
          ? undefined
          : 'bad',
      true,
    );
    expect(altered).toEqual([
      { kind: 'skip', seq: 10 + parts.length - 1, why: expect.stringMatching(/refused: bad/), refused: true },
    ]);
  });
});
