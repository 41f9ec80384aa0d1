import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { RowBatch } from '../../../libs/eventlog/log-rows.ts';
import { LogStreamReader, batchJsonBytes, encodeBatch } from '../../../libs/eventlog/replication-codec.ts';
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
