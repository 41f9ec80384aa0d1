/**
 * One node's own CPU per event, without sockets or other processes: the default target's notice,
 * as the planner sends it (the version's delta carried; signed with --signed 1), handed to a real
 * ApplierSession over a dry-run dataplane, until the ACK it publishes. The NATS connection is a
 * stand-in: it records publishes and serves the first version (checkpoint) by direct get. What
 * the fan-out bench's per-node figure adds to this is the connection's socket read and write and
 * the NATS client's parsing. Usage:
 *   npx tsx bench/fanout/node-event-bench.ts [--events 4000] [--rounds 5] [--warmup 3000] [--sessions 1] [--services 50] [--nodes 100] [--signed 1] [--out FILE]
 * `--sessions N`: N nodes in this process, each notice handed to all of them (as the fan-out
 * bench's worker processes hold 25–250 appliers each): the figure is then per node-event, and
 * its growth over one session's is what sharing one process and its caches costs.
 * `--warmup` events run first, unmeasured (until the JIT has settled, the per-event CPU keeps
 * falling: a 2,000-event round is ~2× slower in the first round than in the fourth). Prints
 * per-round µs per event and a JSON line (min and median over the rounds). `--signed 1` (as the
 * shipped manifests run: appliers with --planner-key) adds `verifyUsPerCall`, the one notice
 * verification a node makes per event timed alone in the same run, and the event's ratio to it.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { ApplierSession } from '../../libs/applier/index.ts';
import {
  ackSubject,
  artifactStatement,
  DEFAULT_TARGET_KEY,
  encodeArtifact,
  H,
  signerFromKey,
  targetNoticeStatement,
  targetNoticeSubject,
  targetStatement,
  verifierFromPem,
  VERSIONS_STREAM,
} from '../../libs/bus/index.ts';
import { DryRunDataplane } from '../../libs/dataplane/index.ts';
import type { NoticeDelta, SignedTarget, VersionArtifact } from '../../libs/model/index.ts';
import { node, service, VersionMaker } from '../../test/libs/bus/fixtures.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '4000' },
    warmup: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '5' },
    services: { type: 'string', default: '50' },
    nodes: { type: 'string', default: '100' },
    signed: { type: 'string', default: '0' },
    sessions: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});
const events = Number(values.events);
const warmup = Number(values.warmup);
const sessions = Number(values.sessions);
const rounds = Number(values.rounds);
const services = Number(values.services);
const signer = values.signed === '1' ? signerFromKey(generateKeyPairSync('ed25519').privateKey) : undefined;
const enc = new TextEncoder();
const dec = new TextDecoder();

type Stored = { headers: Record<string, string>; payload: Uint8Array };
const stored = new Map<string, Stored>();

/** The version's messages as the publisher stores them (signed when there is a signer). */
function store(a: VersionArtifact, baseCheckpoint: number): Stored {
  let first: Stored | undefined;
  for (const m of encodeArtifact(a, { chunkBytes: 1 << 20, baseCheckpoint })) {
    const headers = { ...m.headers };
    if (signer)
      headers[H.sig] = signer.sign(
        artifactStatement({
          subject: m.subject,
          version: a.version,
          parent: a.parent,
          hash: a.hash,
          anchor: '',
          payload: m.payload,
        }),
      );
    const s = { headers, payload: m.payload };
    stored.set(m.subject, s);
    first ??= s;
  }
  return first!;
}

/** The default target's notice bytes for `version`, carrying `delta` when given (TargetStore's noticeText). */
function notice(version: number, delta: Stored | undefined): Uint8Array {
  const issued = 1_000_000 + version;
  const t = { version, configRevision: 0 };
  const target = { ...t, issued, sig: signer?.sign(targetStatement(DEFAULT_TARGET_KEY, t, issued)) ?? '' };
  if (!delta) return enc.encode(JSON.stringify({ revision: version, target }));
  const d = { headers: delta.headers, payload: dec.decode(delta.payload) };
  const statement = signer ? targetNoticeStatement(DEFAULT_TARGET_KEY, target, d) : undefined;
  const sig = statement ? signer!.sign(statement) : undefined;
  return enc.encode(JSON.stringify({ revision: version, target, delta: d, ...(sig ? { sig } : {}) }));
}

const m = new VersionMaker();
const v1 = m.next({
  upsertServices: Array.from({ length: services }, (_, i) => service(i, 5)),
  upsertNodes: Array.from({ length: Number(values.nodes) }, (_, i) => node(`node-${i}`)),
});
store(v1.checkpoint(), 1);
store(v1.delta, 1);
const notices: Uint8Array[] = [];
for (let e = 0; e < warmup + events * rounds; e++) {
  const v = m.next({ upsertServices: [service(e % services, 5, e + 1)] }); // one endpoint set changes
  notices.push(notice(v.delta.version, store(v.delta, 1)));
}

const reply = (subject: string, s: Stored | undefined) =>
  s
    ? {
        data: s.payload,
        headers: {
          code: 0,
          description: '',
          get: (k: string) => (k === 'Nats-Subject' ? subject : k === 'Nats-Sequence' ? '1' : (s.headers[k] ?? '')),
        },
      }
    : { data: new Uint8Array(0), headers: { code: 404, description: 'Message Not Found', get: () => '' } };

/** One simulated node: a session over its own stand-in connection. */
async function startNode(name: string) {
  const n = {
    callback: undefined as ((err: unknown, msg: { data: Uint8Array }) => void) | undefined,
    acked: undefined as (() => void) | undefined,
    session: undefined as ApplierSession | undefined,
  };
  const nc = {
    subscribe(subject: string, o: { callback: typeof n.callback }) {
      if (subject === targetNoticeSubject(DEFAULT_TARGET_KEY)) n.callback = o.callback;
      return { unsubscribe() {} };
    },
    flush: async () => {},
    publish(subject: string) {
      if (subject === ackSubject(name)) n.acked?.();
    },
    request: async (subject: string, payload: string | Uint8Array) => {
      if (subject !== `$JS.API.DIRECT.GET.${VERSIONS_STREAM}` || typeof payload !== 'string')
        return reply(subject, undefined);
      const q = JSON.parse(payload) as { seq: number; next_by_subj: string };
      return reply(q.next_by_subj, q.seq <= 1 ? stored.get(q.next_by_subj) : undefined);
    },
    status: () => ({ [Symbol.asyncIterator]: () => ({ next: () => new Promise(() => {}) }) }),
  } as unknown as NatsConnection;
  n.session = await ApplierSession.start({
    nc,
    node: name,
    dataplane: new DryRunDataplane(),
    heartbeatMs: 0,
    targetRefreshMs: 0,
    verifier: signer ? verifierFromPem(signer.publicKeyPem) : undefined,
    onEvent: (e) => {
      if (e.type === 'nack' || e.type === 'rejected') throw new Error(`${e.type}: ${JSON.stringify(e)}`);
      if (e.type === 'ack' && e.ack.version > 1 && e.path !== 'deltas') throw new Error(`fetched: ${e.path}`);
    },
  });
  return n;
}
const nodes = await Promise.all(Array.from({ length: sessions }, (_, i) => startNode(`node-${i}`)));
/** One event: the notice to every node (as one worker process's connections get it), until every ACK. */
const deliver = (data: Uint8Array) =>
  Promise.all(
    nodes.map(
      (n) =>
        new Promise<void>((done) => {
          n.acked = done;
          n.callback!(null, { data });
        }),
    ),
  );
await deliver(notice(1, undefined)); // the first version from its checkpoint, by direct get
for (let e = 0; e < warmup; e++) await deliver(notices[e]!);

const perRound: number[] = [];
for (let r = 0; r < rounds; r++) {
  const c0 = process.cpuUsage();
  for (let e = 0; e < events; e++) await deliver(notices[warmup + r * events + e]!);
  const c = process.cpuUsage(c0);
  perRound.push((c.user + c.system) / events / sessions); // per node-event
}
for (const n of nodes) await n.session!.stop();
const sorted = [...perRound].sort((a, b) => a - b);

/**
 * Signed: the baseline of the one signature check a node makes per event (the notice's, one
 * Ed25519 verification of its statement), the same verifier on the same statements, in the same
 * run: how much of a node-event it is.
 */
function verifyUsPerCall(): number | undefined {
  if (!signer) return undefined;
  const verifier = verifierFromPem(signer.publicKeyPem);
  const checks = notices.slice(warmup, warmup + Math.min(events, 4000)).map((bytes) => {
    const n = JSON.parse(dec.decode(bytes)) as { target: SignedTarget; delta: NoticeDelta; sig: string };
    return { statement: targetNoticeStatement(DEFAULT_TARGET_KEY, n.target, n.delta)!, sig: n.sig };
  });
  const c0 = process.cpuUsage();
  for (const c of checks) if (!verifier.verify(c.statement, c.sig)) throw new Error('a notice did not verify');
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / checks.length;
}
const verifyUs = verifyUsPerCall();
const result = {
  events,
  warmup,
  rounds,
  sessions,
  services,
  signed: !!signer,
  noticeBytes: notices[0]!.length,
  cpuUsPerEvent: { min: sorted[0]!, median: sorted[Math.floor(sorted.length / 2)]!, rounds: perRound },
  // signed only: one notice verification alone (µs of CPU), and a node-event's median over it
  ...(verifyUs === undefined
    ? {}
    : { verifyUsPerCall: verifyUs, ratioEventVsVerify: sorted[Math.floor(sorted.length / 2)]! / verifyUs }),
};
console.log(`µs per event by round: ${perRound.map((x) => x.toFixed(1)).join(' ')}`);
console.log(JSON.stringify(result));
if (values.out) writeFileSync(values.out, `${JSON.stringify(result, null, 2)}\n`);
process.exit(0);
