import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { RowBatch } from '../../../libs/eventlog/log-rows.ts';
import { createHash } from 'node:crypto';
import { runSteps } from '../../../libs/model/index.ts';
import {
  ENCODE_STEP_BYTES,
  LogStreamReader,
  batchJson,
  batchJsonBytes,
  batchJsonSteps,
  encodeBatch,
  encodeBatchSteps,
  parseBatch,
} from '../../../libs/eventlog/replication-codec.ts';
import { CHAIN_NAMES } from '../../../libs/eventlog/row-chain.ts';

const head = fc.record({ id: fc.nat(), hash: fc.stringMatching(/^[0-9a-f]{64}$/) });
const position = fc.record({
  chains: fc.record(Object.fromEntries(CHAIN_NAMES.map((c) => [c, head])) as Record<string, typeof head>),
  checkpointSeq: fc.nat(),
});
// Cells as stored: text (any code units, lone surrogates included, as JSON.stringify escapes them), numbers, null.
const cell = fc.oneof(fc.string({ unit: 'binary' }), fc.string(), fc.integer(), fc.constant(null));
const rows = fc.array(fc.array(cell, { maxLength: 12 }), { maxLength: 60 });
const batch = fc.record({
  from: position,
  to: position,
  rows: fc.record(Object.fromEntries(CHAIN_NAMES.map((c) => [c, rows])) as Record<string, typeof rows>),
  checkpoints: rows,
  resumePoints: rows,
}) as unknown as fc.Arbitrary<RowBatch>;

describe('replicated log codec', () => {
  it('encodes a large batch in steps of bounded bytes, the same bytes as at once, its digest taken as they come', () => {
    const pos = {
      chains: Object.fromEntries(CHAIN_NAMES.map((c) => [c, { id: 0, hash: '0'.repeat(64) }])),
      checkpointSeq: 0,
    };
    // 2,000 event rows of ~3 KB, then three checkpoint pieces of ~6 MB of JSON text (quotes: escaped again)
    const events = Array.from({ length: 2_000 }, (_, i) => [
      i + 1,
      'Service',
      `{"n":"s${i}","x":"${'é'.repeat(1500)}"}`,
    ]);
    const piece = (k: number) => [
      1,
      k,
      `[${Array.from({ length: 200_000 }, (_, i) => `{"n":"o${k}-${i}","v":"ok"}`).join(',')}]`,
    ];
    const b = {
      from: pos,
      to: pos,
      rows: { ...Object.fromEntries(CHAIN_NAMES.map((c) => [c, []])), events },
      checkpoints: [[1, 1, 'h', 3, '', 'oh', '[]', 'at', 3]],
      resumePoints: [],
      checkpointPieces: [piece(0), piece(1), piece(2)],
    } as unknown as RowBatch;
    const largestRow = Math.max(...b.checkpointPieces!.map((p) => Buffer.byteLength(JSON.stringify(p))));
    const steps = batchJsonSteps(b, (chunk) => {
      made += chunk.length;
    });
    let made = 0;
    const perStep: number[] = [];
    let r = steps.next();
    for (; !r.done; r = steps.next()) {
      perStep.push(made);
      made = 0;
    }
    const whole = Buffer.from(JSON.stringify(b));
    expect(r.value.bytes.equals(whole)).toBe(true);
    expect(r.value.layout).toBe(batchJson(b).layout);
    expect(r.value.layout).toMatch(/^\d+:\d+,\d+,\d+$/);
    // every step made at most its budget and one row more; the pieces alone take a step each
    expect(Math.max(...perStep)).toBeLessThanOrEqual(ENCODE_STEP_BYTES + largestRow);
    expect(perStep.filter((n) => n > 0).length).toBeGreaterThanOrEqual(
      Math.floor(whole.length / (ENCODE_STEP_BYTES + largestRow)),
    );
    expect(perStep.length).toBeGreaterThanOrEqual(5);

    const e = runSteps(encodeBatchSteps(b, 7));
    expect(e.bytes.equals(whole)).toBe(true);
    expect(e.digest).toBe(createHash('sha256').update(whole).digest('hex'));
    expect(runSteps(encodeBatchSteps(b, 7)).id).toBe(e.id); // a retry is deduplicated
    expect(runSteps(encodeBatchSteps(b, 8)).id).not.toBe(e.id); // another term's is another batch
    expect(parseBatch(e.bytes, 'b', e.layout)).toEqual(b);
    // what is signed carries the digest taken, the payload's
    const signed: unknown[] = [];
    encodeBatch(b, 7, 1 << 20, (m) => {
      signed.push(m);
      return 'sig';
    });
    expect(signed).toEqual([expect.objectContaining({ kind: 'rows', term: 7, payloadDigest: e.digest })]);
  });

  it('a batch is encoded as exactly the UTF-8 of its JSON, made in pieces (property)', () => {
    fc.assert(
      fc.property(batch, (b) => {
        expect(batchJsonBytes(b).equals(Buffer.from(JSON.stringify(b)))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('never stringifies a batch, or all of a chain’s rows, as one string; the reader gets the batch back', () => {
    const events = Array.from({ length: 100 }, (_, i) => [i + 1, 'Service', `{"metadata":{"name":"s${i}"},"é":"✓"}`]);
    const pos = {
      chains: Object.fromEntries(CHAIN_NAMES.map((c) => [c, { id: 0, hash: '0'.repeat(64) }])),
      checkpointSeq: 0,
    };
    const b = {
      from: pos,
      to: pos,
      rows: { ...Object.fromEntries(CHAIN_NAMES.map((c) => [c, []])), events },
      checkpoints: [],
      resumePoints: [],
    } as unknown as RowBatch;
    const spy = vi.spyOn(JSON, 'stringify');
    let parts;
    try {
      parts = encodeBatch(b, 3, 1000);
      const args = spy.mock.calls.map((c) => c[0]);
      expect(args).not.toContain(b);
      expect(args).not.toContain(b.rows);
      expect(args).not.toContain(events);
      expect(Math.max(...args.map((a) => (Array.isArray(a) ? a.length : 0)))).toBeLessThanOrEqual(16);
    } finally {
      spy.mockRestore();
    }
    expect(parts.length).toBeGreaterThan(1);
    const reader = new LogStreamReader();
    const items = parts.flatMap((m, i) => reader.read(i + 1, (k) => m.headers[k], m.payload));
    expect(items).toEqual([{ kind: 'batch', seq: parts.length, term: 3, batch: b }]);
  });
});
