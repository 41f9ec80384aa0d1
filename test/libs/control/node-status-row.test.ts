import { describe, expect, it } from 'vitest';
import { nodeStatusRow, summarizeStatus, type NodeObservation } from '../../../libs/control/index.ts';
import type { Ack, Nack, NodeStatusWord } from '../../../libs/model/index.ts';

const ack = (version: number, configRevision: number, nodeStateHash: string): Ack => ({
  type: 'ACK', node: 'n1', version, configRevision, dataHash: 'd', nodeStateHash, mode: 'ipvs', kernelWrites: 0,
  timings: { fetchMs: 0, renderMs: 0, applyMs: 0 }, at: '2025-01-01T00:00:00Z',
});
const nack: Nack = {
  type: 'NACK', node: 'n1', version: 5, configRevision: 2, error: 'ipset: out of memory', lastGoodVersion: 4,
  lastGoodConfigRevision: 1, at: '2025-01-01T00:00:01Z',
};
// A stand-in rule set for the word: the rows' other fields are what is under test here.
const word = (o: NodeObservation): NodeStatusWord => (o.last?.type === 'NACK' ? 'ERROR' : o.last ? 'SYNCED' : 'UNKNOWN');

describe('nodeStatusRow', () => {
  const target = { version: 5, configRevision: 2 };
  it('reports a hash match only for an ACK of the target', () => {
    const ok = nodeStatusRow({ node: 'n1', target, last: ack(5, 2, 'H'), heartbeat: undefined, expectedNodeStateHash: 'H' }, 0, word);
    expect(ok).toMatchObject({ hashMatch: true, lag: 0, appliedVersion: 5, appliedConfigRevision: 2, mode: 'ipvs', lastError: null });
    const bad = nodeStatusRow({ node: 'n1', target, last: ack(5, 2, 'X'), heartbeat: undefined, expectedNodeStateHash: 'H' }, 0, word);
    expect(bad.hashMatch).toBe(false);
    const old = nodeStatusRow({ node: 'n1', target, last: ack(3, 2, 'H'), heartbeat: undefined, expectedNodeStateHash: 'H' }, 0, word);
    expect(old).toMatchObject({ hashMatch: null, lag: 2 });
  });
  it('shows a NACK as its error and last good version', () => {
    const r = nodeStatusRow({ node: 'n1', target, last: nack, heartbeat: undefined, expectedNodeStateHash: undefined }, 0, word);
    expect(r).toMatchObject({ status: 'ERROR', appliedVersion: 4, appliedConfigRevision: 1, lastError: 'ipset: out of memory', lag: 1 });
  });
  it('counts words for the fleet summary', () => {
    const rows = [
      nodeStatusRow({ node: 'a', target, last: nack, heartbeat: undefined, expectedNodeStateHash: undefined }, 0, word),
      nodeStatusRow({ node: 'b', target, last: undefined, heartbeat: undefined, expectedNodeStateHash: undefined }, 0, word),
    ];
    expect(summarizeStatus(rows)).toEqual({ SYNCED: 0, APPLYING: 0, STALE: 0, ERROR: 1, UNKNOWN: 1 });
  });
});
