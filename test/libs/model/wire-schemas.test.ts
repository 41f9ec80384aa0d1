// checkWire's hand-written checks for the per-event messages (a target notice, a delta artifact
// and an ACK) against the zod schemas they stand in for: whatever the input, checkWire accepts exactly what
// the schema accepts, returns a value equal to the schema's output and, on a refusal, the same
// error; and the messages a planner really sends take the fast path (the value is handed back
// as parsed, not copied), as do the ACKs an applier sends.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeArtifact } from '../../../libs/bus/index.ts';
import {
  AckOrNackSchema,
  AckSchema,
  checkWire,
  HeartbeatSchema,
  MAX_NODE_WARNING,
  MAX_NODE_WARNINGS,
  MAX_REPORT_DETAIL,
  MAX_REPORT_ERROR,
  parseWire,
  truncateReportText,
  TargetNoticeSchema,
  VersionArtifactSchema,
  type VersionArtifact,
} from '../../../libs/model/index.ts';
import { node, service, VersionMaker } from '../bus/fixtures.ts';

type Schema = typeof TargetNoticeSchema | typeof VersionArtifactSchema | typeof AckOrNackSchema | typeof AckSchema;

/** checkWire against zod itself on one value; true when checkWire took its fast path. */
function agrees(schema: Schema, v: unknown): boolean {
  const ours = checkWire(schema, v, 'm');
  const zod = schema.safeParse(v);
  if (!zod.success) {
    const i = zod.error.issues[0]!;
    expect(ours).toEqual({ error: `m: ${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}` });
    return false;
  }
  expect('value' in ours).toBe(true);
  const value = (ours as { value: unknown }).value;
  expect(value).toStrictEqual(zod.data);
  return value === v;
}

const hex = (c: string) => c.repeat(64);
const sha = fc.constantFrom(hex('a'), hex('0'), `${hex('f').slice(1)}9`);
const safe = fc.integer({ min: 0, max: 1000 });
const text = fc.string({ maxLength: 8 });
/** Property names a mutation may add or a generator may use: the schemas' own and the tricky ones. */
const KEYS = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'extra',
  'version',
  'configRevision',
  'issued',
  'sig',
  'cleared',
  'revision',
  'target',
  'delta',
  'headers',
  'payload',
  'parent',
  'hash',
  'reason',
  'createdAt',
  'form',
  'entryHashes',
  'upsertServices',
  'removeServices',
  'upsertNodes',
  'removeNodes',
  'services',
  'nodes',
  'key',
  'name',
  'type',
  'node',
  'dataHash',
  'nodeStateHash',
  'mode',
  'kernelWrites',
  'timings',
  'fetchMs',
  'probeMs',
  'health',
  'healthy',
  'detail',
  'instance',
  'at',
  'verdict',
  'stateVerified',
  'probe',
  'injected',
  'attempted',
  'latencyMs',
  'failures',
  'p50',
  'max',
  'target',
  'error',
];
/** Values a mutation may put anywhere: every JSON kind, and the edges of the schemas' checks. */
const ODD: unknown[] = [
  null,
  true,
  false,
  0,
  -0,
  -1,
  1,
  1.5,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  '',
  'x',
  'delta',
  'checkpoint',
  hex('a'),
  hex('A'),
  hex('a').slice(1),
  `${hex('a')}\n`,
  [],
  {},
  [1],
  ['x'],
  [hex('b')],
  { key: 'k' },
  { name: 'n' },
  [{ key: 'k' }],
  [{ name: 'n' }],
  'ACK',
  'NACK',
  'unprobed',
  'x'.repeat(41),
  { target: 't', error: 'e' },
  { p50: 1, max: 2 },
];

/** Defines an own enumerable property, as JSON.parse does (an assignment to __proto__ would not). */
function put(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

const entry = (id: 'key' | 'name') =>
  fc
    .tuple(text, fc.dictionary(fc.constantFrom(...KEYS, 'endpoints', 'port', 'a'), fc.jsonValue({ maxDepth: 2 })))
    .map(([v, rest]) => {
      const e = JSON.parse(JSON.stringify(rest)) as Record<string, unknown>; // own __proto__ as JSON makes it
      put(e, id, v);
      return e;
    });

const signedTarget = fc.oneof(
  fc.record({ version: safe, configRevision: safe, issued: safe, sig: text }),
  fc.record({ cleared: fc.constant(true), issued: safe, sig: text }),
);
const notice = fc.record(
  {
    revision: safe,
    target: signedTarget,
    delta: fc.record({
      headers: fc.dictionary(fc.constantFrom(...KEYS, 'Sb-Version', 'Sb-Hash'), text),
      payload: text,
    }),
    sig: text,
  },
  { requiredKeys: ['revision', 'target'] },
);
const deltaArtifact = fc.record(
  {
    version: safe,
    parent: safe,
    hash: sha,
    reason: text,
    createdAt: text,
    form: fc.constant('delta'),
    delta: fc.record({
      upsertServices: fc.array(entry('key'), { maxLength: 3 }),
      removeServices: fc.array(text, { maxLength: 3 }),
      upsertNodes: fc.array(entry('name'), { maxLength: 3 }),
      removeNodes: fc.array(text, { maxLength: 3 }),
    }),
    entryHashes: fc.record({ services: fc.array(sha, { maxLength: 3 }), nodes: fc.array(sha, { maxLength: 3 }) }),
  },
  { requiredKeys: ['version', 'parent', 'hash', 'reason', 'createdAt', 'form', 'delta'] },
);

/** A string mostly short, sometimes exactly at its bound or one over it (zod refuses or cuts that). */
const within = (max: number) =>
  fc.oneof(
    { arbitrary: text, weight: 40 },
    { arbitrary: fc.constantFrom(max, max + 1).map((n) => 'é'.repeat(n)), weight: 1 },
  );
const ms = fc.oneof(fc.double({ min: 0, max: 1e4, noNaN: true }), safe, fc.constant(-0.5));
const probeReport = fc.record({
  attempted: safe,
  succeeded: safe,
  failed: safe,
  unreachable: safe,
  latencyMs: fc.option(fc.record({ p50: ms, max: ms }), { nil: null }),
  failures: fc.array(fc.record({ target: within(200), error: within(500) }), { maxLength: 9 }),
  at: within(40),
});
const healthVerdict = fc.record(
  {
    verdict: fc.constantFrom('healthy', 'unhealthy', 'unprobed', 'healthy', 'unhealthy', 'unprobed', 'sick'),
    stateVerified: fc.boolean(),
    reason: within(1000),
    probe: fc.option(probeReport, { nil: null }),
    injected: fc.boolean(),
    at: within(40),
  },
  { requiredKeys: ['verdict', 'stateVerified', 'reason', 'probe', 'at'] },
);
const ackReport = fc.record(
  {
    type: fc.constant('ACK'),
    node: within(253),
    version: safe,
    configRevision: safe,
    dataHash: fc.oneof(sha, within(128)),
    nodeStateHash: fc.oneof(sha, within(128)),
    mode: fc.oneof(fc.constantFrom('ipvs', 'nftables'), within(32)),
    kernelWrites: safe,
    timings: fc.record(
      { fetchMs: ms, renderMs: ms, applyMs: ms, probeMs: ms },
      { requiredKeys: ['fetchMs', 'renderMs', 'applyMs'] },
    ),
    health: healthVerdict,
    healthy: fc.boolean(),
    detail: within(1000),
    instance: within(64),
    at: within(40),
  },
  {
    requiredKeys: [
      'type',
      'node',
      'version',
      'configRevision',
      'dataHash',
      'nodeStateHash',
      'mode',
      'kernelWrites',
      'timings',
      'at',
    ],
  },
);

/** Every object and array inside v (v included), in a fixed order. */
function containers(
  v: unknown,
  out: (Record<string, unknown> | unknown[])[] = [],
): (Record<string, unknown> | unknown[])[] {
  if (typeof v !== 'object' || v === null) return out;
  out.push(v as Record<string, unknown>);
  for (const x of Object.values(v)) containers(x, out);
  return out;
}

type Mutation = { at: number; op: 'delete' | 'add' | 'set' | 'wrap'; key: number; odd: number };
const mutation = fc.record({
  at: fc.nat(),
  op: fc.constantFrom('delete', 'add', 'set', 'wrap'),
  key: fc.nat(),
  odd: fc.nat(),
}) as fc.Arbitrary<Mutation>;

/** Applies one mutation in place: drop a member, add one (any key, tricky ones included), replace or wrap one. */
function mutate(v: unknown, m: Mutation): void {
  const all = containers(v);
  if (all.length === 0) return;
  const c = all[m.at % all.length]!;
  const keys = Object.keys(c);
  const pick = keys.length ? keys[m.key % keys.length]! : undefined;
  const odd = structuredClone(ODD[m.odd % ODD.length]);
  if (Array.isArray(c)) {
    const i = m.key % (c.length + 1);
    if (m.op === 'delete') c.splice(i, 1);
    else if (m.op === 'add') c.splice(i, 0, odd);
    else if (i < c.length) c[i] = m.op === 'wrap' ? [c[i]] : odd;
    return;
  }
  if (m.op === 'delete' && pick !== undefined) delete c[pick];
  else if (m.op === 'add') put(c, KEYS[m.key % KEYS.length]!, odd);
  else if (pick !== undefined) put(c, pick, m.op === 'wrap' ? [c[pick]] : odd);
}

describe('checkWire fast path = the zod schema', () => {
  for (const [name, schema, gen] of [
    ['target notice', TargetNoticeSchema, notice],
    ['delta artifact', VersionArtifactSchema, deltaArtifact],
    ['ACK or NACK', AckOrNackSchema, ackReport],
    ['ACK', AckSchema, ackReport],
  ] as const) {
    it(`${name}: accepts and refuses exactly what zod does, with zod's value and error (property, mutations)`, () => {
      let fast = 0;
      let refused = 0;
      let total = 0;
      fc.assert(
        fc.property(gen, fc.array(mutation, { maxLength: 3 }), (base, ms) => {
          const v = JSON.parse(JSON.stringify(base)) as unknown;
          for (const m of ms) mutate(v, m);
          total++;
          if (agrees(schema as Schema, v)) fast++;
          else if (!schema.safeParse(v).success) refused++;
        }),
        { numRuns: 4000 },
      );
      // the runs reached both sides: values the fast path took as they are, and values zod refused
      expect(fast).toBeGreaterThan(total / 10);
      expect(refused).toBeGreaterThan(total / 10);
    }, 120_000); // CPU-bound: 4.3 s quiet, 31 s on 2 cores at load 12 (it timed out at 30 s there)
  }

  it('takes the fast path for what a planner sends: the delta payload and the notice carrying it', () => {
    const m = new VersionMaker();
    m.next({ upsertServices: [service(1, 5), service(2, 3)], upsertNodes: [node('n1'), node('n2')] });
    const d = m.next({ upsertServices: [service(1, 6, 1)], removeServices: ['default/svc-2'] }).delta;
    const [msg] = encodeArtifact(d, { chunkBytes: 1 << 20, baseCheckpoint: 1 });
    const payload = new TextDecoder().decode(msg!.payload);
    const a = JSON.parse(payload) as VersionArtifact;
    expect(a.form === 'delta' && a.entryHashes?.services.length).toBe(1); // hashes carried
    expect(agrees(VersionArtifactSchema, a)).toBe(true);
    const n = {
      revision: 7,
      target: { version: 2, configRevision: 0, issued: 1_700_000_000_000, sig: 'c2ln' },
      delta: { headers: { ...msg!.headers }, payload },
      sig: 'c2ln',
    };
    expect(agrees(TargetNoticeSchema, JSON.parse(JSON.stringify(n)))).toBe(true);
    const parsed = parseWire(TargetNoticeSchema, new TextEncoder().encode(JSON.stringify(n)), 'notice');
    expect(parsed).toEqual({ value: n });
  });

  it('leaves checkpoints, and values zod would change (an own __proto__, an unknown key), to zod', () => {
    const m = new VersionMaker();
    const cp = m.next({ upsertServices: [service(1, 2)] }).checkpoint();
    const v = JSON.parse(JSON.stringify(cp)) as unknown;
    expect(agrees(VersionArtifactSchema, v)).toBe(false);
    const target = { version: 1, configRevision: 0, issued: 1, sig: 's' };
    const proto = JSON.parse(
      '{"revision":1,"target":{"version":1,"configRevision":0,"issued":1,"sig":"s"},"__proto__":{}}',
    );
    expect(agrees(TargetNoticeSchema, proto)).toBe(false);
    const r = checkWire(TargetNoticeSchema, proto, 'm');
    expect(r).toEqual({ value: { revision: 1, target } }); // zod's copy, __proto__ stripped
    expect(agrees(TargetNoticeSchema, { revision: 1, target, other: 1 })).toBe(false);
  });
});

describe('node reports are bounded (review3 N2)', () => {
  const base = {
    type: 'NACK',
    node: 'node-a',
    version: 2,
    configRevision: 1,
    error: 'boom',
    lastGoodVersion: 1,
    lastGoodConfigRevision: 1,
    at: '2026-12-02T04:00:00.000Z',
  };
  const beat = {
    node: 'node-a',
    appliedVersion: 1,
    appliedConfigRevision: 1,
    mode: 'ipvs',
    healthy: false,
    detail: 'resync failed',
    at: '2026-12-02T04:00:00.000Z',
  };

  it('cuts free text to its bound and marks the cut; short text is kept as sent', () => {
    expect(checkWire(AckOrNackSchema, base, 'ack')).toEqual({ value: base });
    const long = checkWire(AckOrNackSchema, { ...base, error: `head ${'x'.repeat(100_000)}` }, 'ack');
    const error = (long as { value: { error: string } }).value.error;
    expect(error.length).toBeLessThanOrEqual(MAX_REPORT_ERROR);
    expect(error).toMatch(/^head x+… \[\d+ more characters\]$/);
    expect(Number(/\[(\d+) more/.exec(error)![1]) + error.indexOf('…')).toBe(100_005);
    const hb = checkWire(HeartbeatSchema, { ...beat, detail: 'd'.repeat(5000) }, 'hb');
    expect((hb as { value: { detail: string } }).value.detail).toMatch(/^d+… \[\d+ more characters\]$/);
    expect((hb as { value: { detail: string } }).value.detail.length).toBeLessThanOrEqual(MAX_REPORT_DETAIL);
    // never half a surrogate pair
    const emoji = truncateReportText('😀'.repeat(600), 100);
    expect(emoji.length).toBeLessThanOrEqual(100);
    expect(emoji.split('…')[0]).toBe('😀'.repeat(emoji.indexOf('…') / 2));
  });

  it('refuses identity fields over their bound (an applier never sends more)', () => {
    expect(checkWire(AckOrNackSchema, { ...base, node: 'n'.repeat(254) }, 'ack')).toMatchObject({
      error: expect.stringMatching(/^ack: node: /),
    });
    expect(checkWire(AckOrNackSchema, { ...base, at: 't'.repeat(41) }, 'ack')).toMatchObject({
      error: expect.stringMatching(/^ack: at: /),
    });
    expect(checkWire(HeartbeatSchema, { ...beat, mode: 'm'.repeat(33) }, 'hb')).toMatchObject({
      error: expect.stringMatching(/^hb: mode: /),
    });
  });

  it('a heartbeat carries up to 8 warnings of up to 1000 characters; more is refused with one line; none still parses', () => {
    expect(checkWire(HeartbeatSchema, beat, 'hb')).toEqual({ value: beat }); // an older applier's
    const warnings = ['<b>listener down</b>', 'w'.repeat(MAX_NODE_WARNING), ...Array(6).fill('x')];
    expect(checkWire(HeartbeatSchema, { ...beat, warnings }, 'hb')).toEqual({ value: { ...beat, warnings } });
    for (const [bad, where] of [
      [[...warnings, 'ninth'], /^hb: warnings: Too big: .*8/],
      [['w'.repeat(MAX_NODE_WARNING + 1)], /^hb: warnings\.0: Too big: .*1000/],
      [[42], /^hb: warnings\.0: /],
      ['not a list', /^hb: warnings: /],
    ] as const) {
      const r = checkWire(HeartbeatSchema, { ...beat, warnings: bad }, 'hb');
      expect(r).toMatchObject({ error: expect.stringMatching(where) });
      expect((r as { error: string }).error).not.toContain('\n');
    }
    expect(MAX_NODE_WARNINGS).toBe(8);
  });
});
