import { gzipSync } from 'node:zlib';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Base64UrlPaddedCodec, Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  EMPTY_POSITION,
  GENESIS_HASH,
  chainHash,
  createLogReplicator,
  logStreamName,
  rowCount,
  type EventLog,
  type LogReplicator,
  type RawRow,
  type RowBatch,
} from '../../../libs/eventlog/index.ts';
import { batchJson, parseBatch } from '../../../libs/eventlog/replication-codec.ts';
import {
  LineSplitter,
  SnapshotTextReader,
  SnapshotTextWriter,
} from '../../../libs/eventlog/replication-snapshot-text.ts';
import { SnapshotStore, snapshotBucket } from '../../../libs/eventlog/replication-snapshots.ts';
import { CHAIN_NAMES, linkFields } from '../../../libs/eventlog/row-chain.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { nodeEvent } from './support/node-event.ts';
import { openLog, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
let nats: NatsServerHandle;
let nc: NatsConnection;
let groups = 0;
beforeAll(async () => {
  nats = await startNatsServer({ jetstream: true });
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  tmp.cleanup();
});
const group = () => `sn${process.pid}-${++groups}`;

const H = 'a'.repeat(64);
/** `n` ACK rows (distinct reports) of `nodes` nodes, one transaction per version (the planner's group commit). */
function acks(log: EventLog, n: number, nodes: number): void {
  const from = log.position().chains.acks.id;
  for (let done = 0; done < n; ) {
    const version = Math.floor((from + done) / nodes) + 1;
    log.atomically(() => {
      for (let k = 0; k < nodes && done < n; k++, done++)
        log.recordAck({
          type: 'ACK',
          node: `node-${k}`,
          version,
          configRevision: 1,
          dataHash: H,
          nodeStateHash: H,
          mode: 'ipvs',
          kernelWrites: 3,
          timings: { fetchMs: 1, renderMs: 2, applyMs: 3 },
          // one instant per row: an identical report is recorded once (recordAck is idempotent)
          at: new Date(Date.UTC(2026, 11, 2, 9) + from + done).toISOString(),
        } as never);
    });
  }
}

/**
 * `n` ACK rows as a batch from the empty log (what a leader's flush would carry), made directly
 * rather than through recordAck one by one: a large log for the cost of hashing its rows.
 */
function ackBatch(n: number, pad = 0): RowBatch {
  const rows: RawRow[] = [];
  let prev = GENESIS_HASH;
  for (let id = 1; id <= n; id++) {
    const node = `node-${id % 100}`;
    const version = Math.ceil(id / 100);
    const at = '2026-12-02T09:00:00.000Z';
    const body = JSON.stringify({
      at,
      configRevision: 1,
      dataHash: H,
      kernelWrites: 3,
      mode: 'ipvs',
      node,
      nodeStateHash: H,
      timings: { applyMs: 3, fetchMs: 1, renderMs: 2 },
      type: 'ACK',
      version,
      ...(pad ? { note: `"${'x'.repeat(pad)}"` } : {}), // quotes: escaped again in the batch's JSON
    });
    const cells = [id, 'ACK', node, version, 1, at, body, at];
    prev = chainHash(prev, linkFields('acks', cells));
    rows.push([...cells, prev]);
  }
  const rowsOf = Object.fromEntries(CHAIN_NAMES.map((c) => [c, c === 'acks' ? rows : []])) as never;
  const to = { ...EMPTY_POSITION, chains: { ...EMPTY_POSITION.chains, acks: { id: n, hash: prev } } };
  return { from: EMPTY_POSITION, to, rows: rowsOf, checkpoints: [], resumePoints: [] };
}

/** The longest the event loop goes without a turn (a 5 ms timer's gaps) until stop(), which returns it. */
function gapMeter(): { stop(): number } {
  let last = performance.now();
  let worst = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 5);
  return {
    stop: () => {
      clearInterval(tick);
      return worst;
    },
  };
}

/** A log with events, acks, a config revision and its resume points: every section of a snapshot. */
async function sampleLog(events: number): Promise<EventLog> {
  const log = await openLog(tmp.file());
  // a multi-byte character in every object, so chunk boundaries fall inside characters too
  log.appendEvents(
    Array.from({ length: events }, (_, i) => {
      const e = nodeEvent(`n${i}`, i + 1);
      return { ...e, object: { ...(e.object as object), note: `ünïcødé ✓ ${'x'.repeat(i % 97)}` } };
    }),
  );
  acks(log, 50, 10);
  log.resumeStore().save('Node', '4242');
  log.resumeStore().flush();
  return log;
}

/** The snapshot text of `b` as the writer makes it. */
function text(b: RowBatch): string {
  const w = new SnapshotTextWriter();
  let out = w.head(b.from, b.to, b.resumePoints);
  for (const [c, rows] of Object.entries(b.rows)) out += w.rows(c as never, rows);
  out += w.rows('checkpoints', b.checkpoints);
  if (b.checkpointPieces) out += w.rows('checkpointPieces', b.checkpointPieces);
  return out + w.end();
}

/** Reads `bytes` fed in chunks of `chunk` bytes, making no string longer than `maxLine` bytes. */
function readBack(bytes: Buffer, chunk: number, maxLine: number): RowBatch {
  const split = new LineSplitter('test snapshot', maxLine);
  const reader = new SnapshotTextReader('test snapshot');
  for (let at = 0; at < bytes.length; at += chunk)
    for (const line of split.push(bytes.subarray(at, at + chunk))) reader.line(line);
  const rest = split.end();
  if (rest) reader.line(rest);
  return reader.end();
}

describe('log snapshot text (one row a line)', () => {
  it('round-trips a log whose JSON is many times the longest line the reader may make; is the same JSON the release before parses whole; refuses a cut or edited text', async () => {
    const log = await sampleLog(1500);
    try {
      const whole = log.exportRows(log.position(), { whole: true });
      const bytes = Buffer.from(text(whole));
      const maxLine = 4096;
      expect(bytes.length).toBeGreaterThan(50 * maxLine);
      // chunks that cut lines and characters anywhere
      for (const chunk of [7, 1000, 65536]) expect(readBack(bytes, chunk, maxLine)).toEqual(whole);
      // the release before reads a snapshot as one JSON text (replication-snapshots.ts, no layout)
      expect(parseBatch(bytes, 'old reader')).toEqual(whole);
      // its slices, read beside the writer, are the same export
      const slices = [];
      for await (const s of log.wholeSlices(log.position())) slices.push(s);
      const w = new SnapshotTextWriter();
      let fromSlices = '';
      for (const s of slices)
        fromSlices += s.kind === 'head' ? w.head(s.from, s.to, whole.resumePoints) : w.rows(s.section, s.rows);
      expect(fromSlices + w.end()).toBe(bytes.toString());
      // a line past the limit is refused before it is made into a string
      expect(() => readBack(bytes, 65536, 100)).toThrow(/a line longer than 100 bytes/);
      const lines = bytes.toString().split('\n');
      expect(() => readBack(Buffer.from(lines.slice(0, -10).join('\n')), 1000, maxLine)).toThrow(/ends early/);
      const edited = [...lines];
      edited[5] = edited[5]!.replace(/^,/, '');
      expect(() => readBack(Buffer.from(edited.join('\n')), 1000, maxLine)).toThrow(/line 6: not a row/);
    } finally {
      log.close();
    }
  });
});

describe('log snapshots in the object store (nats-server)', () => {
  it('a snapshot past the longest line the reader may make round-trips; one written by the release before (one JSON text) is still read', async () => {
    const g = group();
    const jsm = await jetstreamManager(nc);
    const stream = logStreamName(g);
    await jsm.streams.add({ name: stream, subjects: [`sb.log.${g}`] });
    const store = await SnapshotStore.open({ nc, jsm, group: g, stream, replicas: 1, maxLineBytes: 4096 });
    const log = await sampleLog(1500);
    try {
      const to = log.position();
      const whole = log.exportRows(to, { whole: true });
      const w = await store.write({
        streamSeq: 7,
        term: 2,
        to,
        resumePoints: whole.resumePoints,
        slices: log.wholeSlices(to),
        leading: () => true,
      });
      expect(w.rows).toBe(rowCount(to));
      expect(batchJson(whole).bytes.length).toBeGreaterThan(50 * 4096);
      expect(await store.newest(1)).toEqual({ streamSeq: 7, term: 2, batch: whole });
      expect(await store.newestRows()).toBe(rowCount(to));
      // as the release before wrote it: gzip(batchJson), no format in its metadata
      const os = await new Objm(nc).open(snapshotBucket(g));
      await os.putBlob(
        { name: 'seq-9', metadata: { term: '3', rows: String(rowCount(to)) } },
        gzipSync(batchJson(whole).bytes),
      );
      expect(await store.newest(8)).toEqual({ streamSeq: 9, term: 3, batch: whole });
    } finally {
      log.close();
    }
  });

  it('a writer that stops leading half way stores nothing a reader takes for a snapshot', async () => {
    const g = group();
    const jsm = await jetstreamManager(nc);
    const stream = logStreamName(g);
    await jsm.streams.add({ name: stream, subjects: [`sb.log.${g}`] });
    const store = await SnapshotStore.open({ nc, jsm, group: g, stream, replicas: 1 });
    const log = await sampleLog(1500);
    try {
      const to = log.position();
      let pulls = 0;
      const write = store.write({
        streamSeq: 5,
        term: 1,
        to,
        resumePoints: [],
        slices: log.wholeSlices(to),
        leading: () => ++pulls < 4,
      });
      await expect(write).rejects.toThrow(/no longer leading/);
      expect(await store.seqs()).toEqual([]);
      expect(await store.newest(0)).toBeUndefined();
    } finally {
      log.close();
    }
  });
});

/** The subjects stream `OBJ_<bucket>` holds under `$O.<bucket>.<kind>.>`, sorted (one stream-info request). */
async function bucketSubjects(jsm: JetStreamManager, bucket: string, kind: 'M' | 'C'): Promise<string[]> {
  const s = await jsm.streams.info(`OBJ_${bucket}`, { subjects_filter: `$O.${bucket}.${kind}.>` });
  return Object.keys(s.state.subjects ?? {}).sort();
}

describe('deleted snapshots leave nothing in the bucket (nats-server)', () => {
  // The object store's delete publishes a `deleted` marker on the object's metadata subject and
  // purges its chunks: the marker stayed for good, so the bucket's listing (a subject each) grew
  // by one per snapshot ever dropped. The leader now sweeps the markers (and the chunks of a
  // delete cut short) after its trimming.
  for (const signed of [false, true])
    it(`after ${signed ? 'signed' : 'unsigned'} snapshots are trimmed to the two kept, the bucket holds the metadata and chunks of those two only`, async () => {
      const g = group();
      const jsm = await jetstreamManager(nc);
      const stream = logStreamName(g);
      await jsm.streams.add({ name: stream, subjects: [`sb.log.${g}`] });
      const store = await SnapshotStore.open({
        nc,
        jsm,
        group: g,
        stream,
        replicas: 1,
        ...(signed ? { sign: (s: { seq: number }) => `sig-${s.seq}` } : {}),
      });
      const bucket = snapshotBucket(g);
      const meta = (name: string) => `$O.${bucket}.M.${Base64UrlPaddedCodec.encode(name)}`;
      const os = await new Objm(nc).open(bucket);
      // what a release before this one left: a deleted snapshot's marker, and a delete cut short
      // between its marker and its chunks' purge (the marker says deleted, the chunks are there)
      await os.putBlob({ name: 'seq-1', metadata: { term: '1', rows: '1' } }, new Uint8Array(10));
      await os.delete('seq-1');
      const js = jetstream(nc);
      /** Publishes a deletion marker for `name` as the object store writes it, naming the chunks `of` names. */
      const marker = async (name: string, of: string) => {
        const raw = (await jsm.streams.getMessage(`OBJ_${bucket}`, { last_by_subj: meta(of) }))?.json<object>();
        await js.publish(meta(name), JSON.stringify({ ...raw, name, deleted: true, size: 0, chunks: 0, digest: '' }));
      };
      const cut = await os.putBlob({ name: 'seq-2', metadata: { term: '1', rows: '1' } }, new Uint8Array(10));
      await marker('seq-2', 'seq-2');
      expect(await os.info('seq-2')).toMatchObject({ deleted: true });
      // a marker naming chunks a live object holds (two names on the same chunks, one deleted cut
      // short): the marker goes, the chunks stay under the live name
      const other = await os.putBlob({ name: 'other' }, new Uint8Array(10));
      await marker('other-old', 'other');
      const chunks = (...nuids: string[]) => nuids.map((n) => `$O.${bucket}.C.${n}`).sort();
      expect(await bucketSubjects(jsm, bucket, 'C')).toEqual(chunks(cut.nuid, other.nuid));
      const log = await sampleLog(40);
      try {
        const to = log.position();
        for (const seq of [10, 20, 30, 40, 50])
          await store.write({
            streamSeq: seq,
            term: 1,
            to,
            resumePoints: [],
            slices: log.wholeSlices(to),
            leading: () => true,
          });
        expect(await store.seqs()).toEqual([50, 40]);
        expect(await bucketSubjects(jsm, bucket, 'M')).toEqual([meta('seq-40'), meta('seq-50'), meta('other')].sort());
        const kept = await Promise.all(['seq-40', 'seq-50'].map((n) => os.info(n)));
        expect(await bucketSubjects(jsm, bucket, 'C')).toEqual(chunks(...kept.map((i) => String(i?.nuid)), other.nuid));
        expect((await os.getBlob('other'))?.length).toBe(10);
        // a swept name reads as gone, to this release's reader and the object store's own
        expect(await os.info('seq-30')).toBeNull();
        expect((await store.newest(1))?.streamSeq).toBe(50);
      } finally {
        log.close();
      }
    });
});

describe('log snapshots of a leader (nats-server)', () => {
  async function leader(g: string, file: string, lines: string[], every: number, onLine?: (l: string) => void) {
    const log = await openLog(file);
    const r: LogReplicator = await createLogReplicator({
      log,
      nc,
      group: g,
      replicas: 1,
      logger: (l) => {
        lines.push(l);
        onLine?.(l);
      },
      id: 'p',
      snapshotEveryRows: every,
    });
    return { log, r };
  }

  it("a snapshot of a large log keeps the leader's event loop turning (review4 G4: it stalled for seconds)", async () => {
    const ROWS = Number(process.env.SNAP_STALL_ROWS ?? 15_000);
    const g = group();
    const lines: string[] = [];
    let stored!: () => void;
    const done = new Promise<void>((res) => {
      stored = res;
    });
    const { log, r } = await leader(g, tmp.file(), lines, ROWS, (l) => {
      if (l.includes('snapshot at seq')) stored();
    });
    try {
      await r.claim(1);
      log.importRows(ackBatch(ROWS - 10));
      await r.flush();
      // the flush that passes ROWS starts the snapshot: from there until it is stored, a timer
      // measures the longest the event loop went without a turn
      acks(log, 10, 100);
      const started = performance.now();
      const gaps = gapMeter();
      await r.flush();
      await done;
      const took = performance.now() - started;
      const worst = gaps.stop();
      console.log(
        `snapshot of ${ROWS} ACK rows: ${Math.round(took)} ms, longest event-loop gap ${Math.round(worst)} ms`,
      );
      // Before: the export, its JSON and its gzip ran on this thread in one go, so the longest gap
      // was most of the whole (seen: 890 of 1227 ms at 15k rows, 2615 of 3357 ms at 30k, load
      // 17-18). Now each turn is one slice: seen 113-268 ms gaps (scavenges and a host at load
      // 15-18) in 750-2060 ms. Judged against the snapshot's own duration, so the test says the
      // same on a quiet host and a loaded one; 1 s as the bound that matters to a lease (11 s).
      expect(worst).toBeLessThan(Math.min(1000, took * 0.4));
      expect(lines.filter((l) => l.includes('snapshot at seq'))).toEqual([
        expect.stringMatching(new RegExp(`\\(${ROWS} rows`)),
      ]);
    } finally {
      await r.close();
      log.close();
    }
  }, 60_000);

  it("a flush of a large batch keeps the leader's event loop turning (a first checkpoint's batch held it ~8 s at 10,000 services)", async () => {
    const g = group();
    const lines: string[] = [];
    const { log, r } = await leader(g, tmp.file(), lines, 1e9);
    try {
      await r.claim(1);
      // ~48 MB of JSON (each row's body escaped again): encoding it whole took 250-400 ms here
      log.importRows(ackBatch(3_000, 16_000));
      const gaps = gapMeter();
      const started = performance.now();
      await r.flush();
      const took = performance.now() - started;
      const worst = gaps.stop();
      console.log(
        `flush of 3,000 rows of 16 KB: ${Math.round(took)} ms, longest event-loop gap ${Math.round(worst)} ms`,
      );
      expect(r.position().streamSeq).toBeGreaterThan(40); // 1 MiB parts: it was all sent
      expect(worst).toBeLessThan(took * 0.4);
    } finally {
      await r.close();
      log.close();
    }
  }, 60_000);

  it('a claim does not wait for the snapshot listing; the spacing moves to it when it answers, late or not', async () => {
    const g = group();
    const file = tmp.file();
    const lines: string[] = [];
    const flushRows = async (p: { log: EventLog; r: LogReplicator }, flushes: number) => {
      for (let i = 0; i < flushes; i++) {
        p.log.appendEvents(Array.from({ length: 10 }, (_, k) => nodeEvent(`n${k}`, rv++)));
        await p.r.flush();
      }
    };
    let rv = 1;
    let p = await leader(g, file, lines, 40);
    await p.r.claim(1);
    await flushRows(p, 10); // snapshots at 40 and 80 rows; the file holds 100
    await p.r.close();
    p.log.close();
    const taken = () =>
      lines.filter((l) => l.includes('snapshot at seq')).map((l) => Number(/\((\d+) rows/.exec(l)?.[1]));
    expect(taken()).toEqual([40, 80]);

    // The store answers the listing 4 s late (as when it times out under load).
    const LATE_MS = 4000;
    const newestRows = SnapshotStore.prototype.newestRows;
    let answered = false;
    const late = vi.spyOn(SnapshotStore.prototype, 'newestRows').mockImplementation(async function (
      this: SnapshotStore,
    ) {
      await new Promise((res) => setTimeout(res, LATE_MS));
      const rows = await newestRows.call(this);
      answered = true;
      return rows;
    });
    try {
      p = await leader(g, file, lines, 40);
      const started = performance.now();
      await p.r.claim(2);
      expect(performance.now() - started).toBeLessThan(LATE_MS - 1000);
      // From the newest snapshot (80 rows) the next is due at 160; from the file's 100 rows, at 200.
      await flushRows(p, 7); // 170 rows, all flushed before the listing answers
      expect(answered).toBe(false);
      expect(taken()).toEqual([40, 80]);
      const deadline = performance.now() + LATE_MS + 10_000;
      while (taken().length < 3 && performance.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      expect(answered).toBe(true);
      expect(taken()).toEqual([40, 80, 170]); // taken at the last flush once the listing moved the spacing
      await p.r.close();
      p.log.close();
    } finally {
      late.mockRestore();
    }
  }, 60_000);

  it('a planner restarted more often than its log doubles still snapshots and trims its stream (review4 G4)', async () => {
    const g = group();
    const file = tmp.file();
    const lines: string[] = [];
    let term = 0;
    let rv = 0;
    // A claim lists the newest snapshot beside it, not before it: each round waits for that listing
    // (and the turn that moves the spacing), so the snapshots land at the flush they are due at,
    // not a flush later when the listing is slow (under load: 170 and 350 rows).
    const newestRows = SnapshotStore.prototype.newestRows;
    let listed: Promise<unknown> = Promise.resolve();
    const watched = vi.spyOn(SnapshotStore.prototype, 'newestRows').mockImplementation(function (this: SnapshotStore) {
      const rows = newestRows.call(this);
      listed = rows.catch(() => undefined);
      return rows;
    });
    const claim = async (r: LogReplicator) => {
      await r.claim(++term);
      await listed;
      await new Promise((res) => setImmediate(res));
    };
    try {
      let p = await leader(g, file, lines, 40);
      await claim(p.r);
      // 40 flushes of 10 rows; from row 60 on, a restart (and a new claim) every 30 rows
      for (let i = 0; i < 40; i++) {
        if (i >= 6 && i % 3 === 0) {
          await p.r.close();
          p.log.close();
          p = await leader(g, file, lines, 40);
          await claim(p.r);
        }
        p.log.appendEvents(Array.from({ length: 10 }, () => nodeEvent(`n${rv % 7}`, ++rv)));
        await p.r.flush();
      }
      await p.r.close();
      p.log.close();
    } finally {
      watched.mockRestore();
    }
    // snapshots at 40, 80, 160 and 320 rows, as without restarts (before: none after the first restart)
    const taken = lines.filter((l) => l.includes('snapshot at seq')).map((l) => Number(/\((\d+) rows/.exec(l)?.[1]));
    expect(taken).toEqual([40, 80, 160, 320]);
    const state = (await (await jetstreamManager(nc)).streams.info(logStreamName(g))).state;
    expect(state.first_seq).toBeGreaterThan(1);
  }, 60_000);
});
