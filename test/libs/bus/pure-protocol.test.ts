import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  computeNodeStatus,
  decodeCheckpoint,
  decodeDelta,
  encodeArtifact,
  H,
  handleReport,
  nodeToken,
  payloadDigest,
} from '../../../libs/bus/index.ts';
import { artifactBytes } from '../../../libs/bus/artifact-codec.ts';
import { contentHash, MAX_REPORT_BYTES, MAX_REPORT_ERROR, type ServiceEntry } from '../../../libs/model/index.ts';
import { node, service, VersionMaker } from './fixtures.ts';

describe('artifact codec', () => {
  it('round-trips deltas and chunked checkpoints', () => {
    const m = new VersionMaker();
    const v = m.next({
      upsertServices: Array.from({ length: 40 }, (_, i) => service(i, 5)),
      upsertNodes: [node('n1')],
    });
    const cp = v.checkpoint();
    const msgs = encodeArtifact(cp, { chunkBytes: 2048, baseCheckpoint: 0 });
    expect(msgs.length).toBeGreaterThan(3);
    expect(msgs.every((x) => x.payload.length <= 2048)).toBe(true);
    expect(msgs.map((x) => x.subject)).toEqual(msgs.map((_, i) => `sb.v.checkpoint.1.${i}`));
    const back = decodeCheckpoint(msgs.map((x) => x.payload));
    expect(back.ok && back.value).toEqual(cp);
    const [dm] = encodeArtifact(v.delta, { chunkBytes: 1e6, baseCheckpoint: 1 });
    expect(dm!.subject).toBe('sb.v.delta.1');
    expect(dm!.headers['Sb-Checkpoint']).toBe('1');
    const d = decodeDelta(dm!.payload);
    // the planner hashes each upserted entry once and the delta carries the hashes, with a digest
    expect(d.ok && d.value).toEqual({
      ...v.delta,
      entryHashes: {
        services: v.delta.delta.upsertServices.map((e) => contentHash(e)),
        nodes: v.delta.delta.upsertNodes.map((f) => contentHash(f)),
      },
    });
    expect(dm!.headers[H.payloadDigest]).toBe(payloadDigest(dm!.payload));
    // SHA-256 of the bytes; of text (as a notice carries the payload), of its UTF-8 bytes
    expect(payloadDigest(dm!.payload)).toBe(createHash('sha256').update(dm!.payload).digest('hex'));
    const text = 'endpoint é ✓ \u{1f600}';
    expect(payloadDigest(text)).toBe(createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex'));
    // a delta over the chunk size becomes a marker pointing at its own checkpoint...
    const [stub] = encodeArtifact(v.delta, { chunkBytes: 2048, baseCheckpoint: 1 });
    expect(stub!.payload.length).toBe(0);
    expect(stub!.headers['Sb-Checkpoint-Only']).toBe('1');
    // ...which must exist already
    expect(() => encodeArtifact(v.delta, { chunkBytes: 2048, baseCheckpoint: 0 })).toThrow(
      /publish checkpoint 1 first/,
    );
  });
  it('finds an oversize delta from a prefix of its entries, without encoding the rest', () => {
    const m = new VersionMaker();
    let serialised = 0;
    // toJSON counts how many entries JSON.stringify visits (the encoded JSON is unchanged)
    const counted = (e: ServiceEntry): ServiceEntry =>
      Object.defineProperty({ ...e }, 'toJSON', {
        value: () => {
          serialised++;
          return e;
        },
      });
    const v = m.next({ upsertServices: Array.from({ length: 200 }, (_, i) => counted(service(i, 5))) });
    const [stub] = encodeArtifact(v.delta, { chunkBytes: 4096, baseCheckpoint: 1 });
    expect(stub!.headers[H.checkpointOnly]).toBe('1');
    expect(stub!.payload.length).toBe(0);
    // each entry is ~700 bytes: the decision needs ~6 of the 200, not the whole delta
    expect(serialised).toBeLessThan(10);
  });
  it('decides "one message or a marker" exactly as encoding the whole delta would', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(500), fc.nat(6)), { maxLength: 30 }),
        fc.array(fc.string({ maxLength: 40 }), { maxLength: 5 }),
        fc.integer({ min: 64, max: 8000 }),
        (svcs, nodeNames, chunkBytes) => {
          const m = new VersionMaker();
          const v = m.next({
            upsertServices: svcs
              .map(([i, e]) => service(i, e))
              .filter((s, i, all) => all.findIndex((o) => o.key === s.key) === i),
            upsertNodes: [...new Set(nodeNames.map((n) => `n-${n}`))].map((n) => node(n)),
          });
          const opts = { chunkBytes, baseCheckpoint: 1 };
          // the codec's old path: always encode the delta, then compare its length
          expect(encodeArtifact(v.delta, opts)).toEqual(
            encodeArtifact(v.delta, opts, artifactBytes(v.delta, chunkBytes)),
          );
        },
      ),
    );
  });
  it('reports corrupt payloads as errors, never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = decodeDelta(bytes);
        expect(r.ok).toBe(false);
      }),
    );
    expect(decodeDelta(new TextEncoder().encode('{"version":1}'))).toMatchObject({ ok: false });
    const m = new VersionMaker();
    const [dm] = encodeArtifact(m.next({ upsertServices: [service(1)] }).delta, { chunkBytes: 1e6, baseCheckpoint: 0 });
    expect(decodeCheckpoint([dm!.payload])).toMatchObject({ ok: false, error: 'expected a checkpoint, got delta' });
  });
  it('refuses carried entry hashes that do not pair up with the entries, or are not SHA-256 digests', () => {
    const m = new VersionMaker();
    const [dm] = encodeArtifact(m.next({ upsertServices: [service(1), service(2)] }).delta, {
      chunkBytes: 1e6,
      baseCheckpoint: 0,
    });
    const a = JSON.parse(new TextDecoder().decode(dm!.payload));
    expect(decodeDelta(JSON.stringify(a)).ok).toBe(true);
    const one = { ...a, entryHashes: { ...a.entryHashes, services: a.entryHashes.services.slice(1) } };
    expect(decodeDelta(JSON.stringify(one))).toMatchObject({ ok: false, error: /do not pair up/ });
    const notHex = { ...a, entryHashes: { ...a.entryHashes, services: ['x', a.entryHashes.services[1]] } };
    expect(decodeDelta(JSON.stringify(notHex))).toMatchObject({ ok: false, error: /entryHashes/ });
  });
});

describe('subjects', () => {
  it('maps node names to single subject tokens, one-to-one', () => {
    expect(nodeToken('ip-10-0-0-1.ec2.internal')).toBe('ip-10-0-0-1_ec2_internal');
    for (const bad of ['', 'a b', 'a*', 'a>', 'a_b', '-a', 'a.']) expect(() => nodeToken(bad)).toThrow();
  });
});

describe('computeNodeStatus', () => {
  const t = { version: 5, configRevision: 1 };
  const ack = (version: number, configRevision = 1) => ({
    type: 'ACK' as const,
    node: 'n1',
    version,
    configRevision,
    dataHash: 'd',
    nodeStateHash: 'h',
    mode: 'dry-run',
    kernelWrites: 0,
    timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
    at: '',
  });
  const nack = {
    type: 'NACK' as const,
    node: 'n1',
    version: 5,
    configRevision: 1,
    error: 'boom',
    lastGoodVersion: 4,
    lastGoodConfigRevision: 1,
    at: '',
  };
  const hb = (v: number, healthy = true) => ({
    node: 'n1',
    appliedVersion: v,
    appliedConfigRevision: 1,
    mode: 'ipvs',
    healthy,
    detail: healthy ? '' : 'bad',
    at: '',
  });
  const base = {
    target: t,
    targetSetAt: 1000,
    lastAck: undefined,
    lastAckAt: undefined,
    lastHeartbeat: undefined,
    lastHeartbeatAt: undefined,
    now: 2000,
  };
  const th = { silenceMs: 10_000, applyTimeoutMs: 5_000 };
  it('derives each status word', () => {
    expect(computeNodeStatus({ ...base, thresholds: th }).status).toBe('UNKNOWN');
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(5), lastAckAt: 1500 })).toMatchObject({
      status: 'SYNCED',
      appliedVersion: 5,
    });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(4), lastAckAt: 1500 })).toMatchObject({
      status: 'APPLYING',
      appliedVersion: 4,
    });
    expect(
      computeNodeStatus({ ...base, thresholds: th, now: 7000, lastHeartbeat: hb(4), lastHeartbeatAt: 6900 }),
    ).toMatchObject({ status: 'STALE' });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: nack, lastAckAt: 1500 })).toMatchObject({
      status: 'ERROR',
      appliedVersion: 4,
    });
    expect(computeNodeStatus({ ...base, thresholds: th, now: 20_000, lastAck: ack(5), lastAckAt: 1500 })).toMatchObject(
      { status: 'UNKNOWN' },
    );
    expect(
      computeNodeStatus({
        ...base,
        thresholds: th,
        lastAck: ack(5),
        lastAckAt: 1500,
        lastHeartbeat: hb(5, false),
        lastHeartbeatAt: 1600,
      }),
    ).toMatchObject({ status: 'ERROR' });
    expect(computeNodeStatus({ ...base, thresholds: th, lastAck: ack(5, 2), lastAckAt: 1500 })).toMatchObject({
      status: 'APPLYING',
    });
  });
  it('a NACK for an older target does not make a node on the new target ERROR', () => {
    expect(
      computeNodeStatus({
        ...base,
        thresholds: th,
        target: { version: 6, configRevision: 1 },
        lastAck: nack,
        lastAckAt: 1500,
      }).status,
    ).toBe('APPLYING');
  });
  it('a heartbeat newer than the ack reports what runs now', () => {
    expect(
      computeNodeStatus({
        ...base,
        thresholds: th,
        lastAck: ack(4),
        lastAckAt: 1200,
        lastHeartbeat: hb(5),
        lastHeartbeatAt: 1800,
      }).status,
    ).toBe('SYNCED');
  });
});

describe('ack collector (review3 N2)', () => {
  it('refuses a report over MAX_REPORT_BYTES before parsing it; one under it passes', () => {
    const heard: string[] = [];
    const cb = {
      onNack: (n: { error: string }) => heard.push(`nack ${n.error.length}`),
      onInvalid: (_s: string, e: string) => heard.push(e),
    };
    const nack = (error: string) =>
      new TextEncoder().encode(
        JSON.stringify({
          type: 'NACK',
          node: 'node-a',
          version: 1,
          configRevision: 1,
          error,
          lastGoodVersion: 0,
          lastGoodConfigRevision: 0,
          at: '2026-12-02T04:00:00.000Z',
        }),
      );
    const over = nack('x'.repeat(MAX_REPORT_BYTES));
    handleReport('sb.ack.node-a', over, 'ack', cb, 0);
    // the same size but not even JSON: refused for its size, so it was never parsed
    handleReport('sb.ack.node-a', new Uint8Array(over.length).fill(0x7b), 'hb', cb, 0);
    handleReport('sb.ack.node-a', nack('y'.repeat(MAX_REPORT_BYTES / 2)), 'ack', cb, 0);
    expect(heard).toEqual([
      `ack: ${over.length} bytes, over the ${MAX_REPORT_BYTES}-byte limit`,
      `hb: ${over.length} bytes, over the ${MAX_REPORT_BYTES}-byte limit`,
      `nack ${MAX_REPORT_ERROR}`,
    ]);
  });
});
