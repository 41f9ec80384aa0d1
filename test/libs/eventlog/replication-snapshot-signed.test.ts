import { generateKeyPairSync } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Base64UrlPaddedCodec, Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logSnapshotStatement, signerFromKey, verifierFromPem } from '../../../libs/bus/index.ts';
import {
  createLogReplicator,
  logStreamName,
  rowCount,
  type EventLog,
  type LogReplicator,
} from '../../../libs/eventlog/index.ts';
import { SnapshotTextWriter, SNAPSHOT_TEXT_FORMAT } from '../../../libs/eventlog/replication-snapshot-text.ts';
import { SnapshotStore, snapshotBucket, type SnapshotSigned } from '../../../libs/eventlog/replication-snapshots.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { nodeEvent } from './support/node-event.ts';
import { caughtUpWith } from './support/replicated-history.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// The log stream is signed (probe10 H11), its snapshots were not: a new or far-behind replica takes
// the newest `seq-N` object of `sb_logsnap_<group>` as its whole log, so whoever may write that
// bucket gave it another history (rows no leader wrote, imported as real watch events).

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
const otherKey = signerFromKey(generateKeyPairSync('ed25519').privateKey);

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
    snapshotEveryRows: 20,
    ...(signed ? { signer: groupKey } : {}),
  });
  return { log, r };
}

/** A snapshot's text (gzipped) of the whole of `log`, as a leader writes it. */
async function snapshotOf(log: EventLog): Promise<Uint8Array> {
  const to = log.position();
  const w = new SnapshotTextWriter();
  let text = '';
  const resume = log.exportRows(to, { whole: true }).resumePoints;
  for await (const s of log.wholeSlices(to))
    text += s.kind === 'head' ? w.head(s.from, s.to, resume) : w.rows(s.section, s.rows);
  return gzipSync(text + w.end());
}

describe('signed log snapshots (one nats-server, real SQLite files)', () => {
  it('a new replica refuses unsigned, foreign-signed and altered snapshots, one line each, and bootstraps from the genuine one', async () => {
    const g = `snapsig-${process.pid}`;
    const leaderLines: string[] = [];
    const a = await replica(g, leaderLines, true);
    // the forger holds NATS credentials, not the key: it follows the stream (it checks nothing)
    const f = await replica(g, [], false);
    const lines: string[] = [];
    let n: { log: EventLog; r: LogReplicator } | undefined;
    try {
      await a.r.claim(1);
      const ff = f.r.follow();
      await ff.caughtUp;
      for (let i = 0; i < 12; i++) {
        a.log.appendEvents(Array.from({ length: 10 }, (_, k) => nodeEvent(`n${k}`, i * 10 + k + 1)));
        await a.r.flush();
      }
      await caughtUpWith(f, a, "the forger's copy");
      await ff.stop();
      await a.r.close(); // waits for the snapshot under way
      const taken = leaderLines.filter((l) => l.includes(': snapshot at seq'));
      expect(taken.length, leaderLines.join('\n')).toBeGreaterThanOrEqual(3);
      const jsm = await jetstreamManager(nc);
      const first = (await jsm.streams.info(logStreamName(g))).state.first_seq;
      expect(first).toBeGreaterThan(1); // trimmed: a new replica must start from a snapshot

      const os = await new Objm(nc).open(snapshotBucket(g));
      const genuine = (await os.list()).filter((i) => /^seq-\d+$/.test(i.name));
      expect(genuine.every((i) => typeof i.metadata?.sig === 'string')).toBe(true);
      const newest = Math.max(...genuine.map((i) => Number(i.name.slice(4))));

      // the forger's history: the group's log and one row no leader wrote
      f.log.appendEvents([{ ...nodeEvent('forged', 9001), uid: 'u-forged' }]);
      const forged = await snapshotOf(f.log);
      const meta = (seq: number) => ({
        term: '1',
        rows: String(rowCount(f.log.position())),
        format: SNAPSHOT_TEXT_FORMAT,
        seq,
      });
      // 1. unsigned, far ahead of the leader's snapshots
      const m1 = meta(newest + 100);
      await os.putBlob(
        { name: `seq-${m1.seq}`, metadata: { term: m1.term, rows: m1.rows, format: m1.format } },
        forged,
      );
      // 2. signed with another key (its digest as the store computed it)
      const m2 = meta(newest + 50);
      const put2 = await os.putBlob(
        { name: `seq-${m2.seq}`, metadata: { term: m2.term, rows: m2.rows, format: m2.format } },
        forged,
      );
      const sig2 = otherKey.sign(logSnapshotStatement({ group: g, ...m2, term: 1, digest: put2.digest }));
      await os.update(`seq-${m2.seq}`, { metadata: { term: m2.term, rows: m2.rows, format: m2.format, sig: sig2 } });
      // 3. the leader's newest snapshot, its content replaced, its signed metadata kept
      const real = await os.info(`seq-${newest}`);
      expect(real?.metadata?.sig).toEqual(expect.any(String));
      await os.putBlob({ name: `seq-${newest}`, metadata: real?.metadata ?? {} }, forged);

      n = await replica(g, lines, true);
      const fn = n.r.follow();
      await fn.caughtUp;
      await fn.stop();
      const refused = lines.filter((l) => / refused: /.test(l));
      expect(refused, lines.join('\n')).toEqual([
        expect.stringMatching(new RegExp(`^log snapshot seq-${m1.seq} refused: not signed .*; not used`)),
        expect.stringMatching(new RegExp(`^log snapshot seq-${m2.seq} refused: its signature is not the group's`)),
        expect.stringMatching(new RegExp(`^log snapshot seq-${newest} refused: its signature is not the group's`)),
      ]);
      expect(lines.some((l) => /caught up from snapshot seq-\d+/.test(l))).toBe(true);
      expect(n.log.events().map((e) => e.name)).not.toContain('forged');
      expect(n.log.position()).toEqual(a.log.position());
    } finally {
      for (const x of [a, f, ...(n ? [n] : [])]) {
        await x.r.close();
        x.log.close();
      }
    }
  }, 30_000);

  it("the leader's retention counts only signed snapshots; a forgery at the name it writes next is replaced", async () => {
    const g = `snapkeep-${process.pid}`;
    const jsm = await jetstreamManager(nc);
    const stream = logStreamName(g);
    await jsm.streams.add({ name: stream, subjects: [`sb.log.${g}`] });
    const of = (m: SnapshotSigned) => logSnapshotStatement({ ...m, group: g });
    const verifier = verifierFromPem(groupKey.publicKeyPem);
    const lines: string[] = [];
    const store = await SnapshotStore.open({
      nc,
      jsm,
      group: g,
      stream,
      replicas: 1,
      sign: (m) => groupKey.sign(of(m)),
      check: (m, sig) => (!sig ? 'not signed' : verifier.verify(of(m), sig) ? undefined : 'badly signed'),
      say: (l) => lines.push(l),
    });
    const log = await openLog(tmp.file());
    try {
      log.appendEvents(Array.from({ length: 30 }, (_, k) => nodeEvent(`n${k}`, k + 1)));
      const to = log.position();
      const forged = await snapshotOf(log);
      const os = await new Objm(nc).open(snapshotBucket(g));
      // forgeries far ahead, and one at the very name the leader writes next
      for (const seq of [1000, 1001, 30])
        await os.putBlob(
          { name: `seq-${seq}`, metadata: { term: '1', rows: '30', format: SNAPSHOT_TEXT_FORMAT } },
          forged,
        );
      const write = (streamSeq: number) =>
        store.write({
          streamSeq,
          term: 1,
          to,
          resumePoints: [],
          slices: log.wholeSlices(to),
          leading: () => true,
        });
      for (const seq of [10, 20, 30]) await write(seq);
      expect(await store.seqs()).toEqual([30, 20]); // the two newest signed: its own, none deleted for the forgeries
      const names = (await os.list()).map((i) => i.name).sort();
      expect(names).toEqual(['seq-1000', 'seq-1001', 'seq-20', 'seq-30']); // no writing- object left
      expect((await store.newest(0))?.streamSeq).toBe(30);
      expect(lines).toEqual([
        expect.stringMatching(/^log snapshot seq-1001 refused: not signed/),
        expect.stringMatching(/^log snapshot seq-1000 refused: not signed/),
      ]);
    } finally {
      log.close();
    }
  });

  it("a killed writer's `writing-` object is never read and goes with the next write; one cut short inside the rename loses only its name, not the signed snapshot's chunks", async () => {
    const g = `snapkill-${process.pid}`;
    const jsm = await jetstreamManager(nc);
    const stream = logStreamName(g);
    await jsm.streams.add({ name: stream, subjects: [`sb.log.${g}`] });
    const of = (m: SnapshotSigned) => logSnapshotStatement({ ...m, group: g });
    const verifier = verifierFromPem(groupKey.publicKeyPem);
    const store = await SnapshotStore.open({
      nc,
      jsm,
      group: g,
      stream,
      replicas: 1,
      sign: (m) => groupKey.sign(of(m)),
      check: (m, sig) => (!sig ? 'not signed' : verifier.verify(of(m), sig) ? undefined : 'badly signed'),
    });
    const bucket = snapshotBucket(g);
    const os = await new Objm(nc).open(bucket);
    const meta = (name: string) => `$O.${bucket}.M.${Base64UrlPaddedCodec.encode(name)}`;
    /** What a writer killed inside the rename of `seq-S` leaves: its old name, on the same chunks. */
    const cutRename = async (seq: number) => {
      const named = await jsm.streams.getMessage(`OBJ_${bucket}`, { last_by_subj: meta(`seq-${seq}`) });
      const raw = named!.json<{ metadata: Record<string, string> }>();
      const { sig: _sig, ...unsigned } = raw.metadata;
      await jetstream(nc).publish(
        meta(`writing-seq-${seq}`),
        JSON.stringify({ ...raw, name: `writing-seq-${seq}`, metadata: unsigned }),
      );
    };
    /** Chunks the stream still holds of object `name`, and how many it has. */
    const chunks = async (name: string) => {
      const i = await os.info(name);
      const subject = `$O.${bucket}.C.${i?.nuid}`;
      const st = await jsm.streams.info(`OBJ_${bucket}`, { subjects_filter: subject });
      return { held: st.state.subjects?.[subject] ?? 0, of: i?.chunks };
    };
    const log = await openLog(tmp.file());
    try {
      log.appendEvents(Array.from({ length: 30 }, (_, k) => nodeEvent(`n${k}`, k + 1)));
      const to = log.position();
      const whole = log.exportRows(to, { whole: true });
      const write = (streamSeq: number) =>
        store.write({
          streamSeq,
          term: 1,
          to,
          resumePoints: whole.resumePoints,
          slices: log.wholeSlices(to),
          leading: () => true,
        });
      await write(10);
      await cutRename(10);
      // killed after the put of seq 15, before its rename: an object of its own, never signed
      await os.putBlob(
        { name: 'writing-seq-15', metadata: { term: '1', rows: '30', format: SNAPSHOT_TEXT_FORMAT } },
        await snapshotOf(log),
      );
      expect(await store.seqs()).toEqual([10]);
      expect((await store.newest(0))?.streamSeq).toBe(10);
      expect((await chunks('seq-10')).held).toBeGreaterThan(0);

      await write(20);
      expect((await os.list()).map((i) => i.name).sort()).toEqual(['seq-10', 'seq-20']);
      const ten = await chunks('seq-10');
      expect(ten.held).toBe(ten.of); // the old code purged them with the `writing-` name

      // the same seq written again over such a leftover (a put over a name purges its old chunks)
      await cutRename(20);
      await write(20);
      expect((await os.list()).map((i) => i.name).sort()).toEqual(['seq-10', 'seq-20']);
      const twenty = await chunks('seq-20');
      expect(twenty.held).toBe(twenty.of);
      expect(await store.newest(0)).toEqual({ streamSeq: 20, term: 1, batch: whole });
    } finally {
      log.close();
    }
  });
});
