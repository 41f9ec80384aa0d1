import { describe, expect, it } from 'vitest';
import {
  readKubeObject,
  type EndpointEntry,
  type EndpointSliceObject,
  type ServiceObject,
} from '../../../libs/model/index.ts';
import { buildServiceEntry } from '../../../libs/planner/index.ts';
import { prng } from '../eventlog/support/random-history.ts';

// An endpoint's entry is made as one of two plain object literals (with or without hintNodes)
// rather than one literal with a spread, which left each of the 100 000 entries of a 10k initial
// list with its properties outside the object (issue 15 item 4, twelfth round: 20.1 -> 16.3 MB
// retained for 10 000 services' entries). The entries' keys, their order, their values and so
// their canonical text and hash must be those of the spread form, `reference` below.

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const uniqueSorted = (xs: readonly string[]): string[] => [...new Set(xs)].sort(byCodeUnit);

function reference(e: {
  ip: string;
  port: number;
  nodeName: string;
  zone: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  hintZones: readonly string[];
  hintNodes: readonly string[];
}): EndpointEntry {
  return {
    ...(e.hintNodes.length > 0 ? { hintNodes: uniqueSorted(e.hintNodes) } : {}),
    hintZones: uniqueSorted(e.hintZones),
    ip: e.ip,
    nodeName: e.nodeName,
    port: e.port,
    ready: e.ready,
    serving: e.serving,
    terminating: e.terminating,
    zone: e.zone,
  };
}

const read = <T>(o: unknown): T => {
  const r = readKubeObject(o);
  if (!r.ok) throw new Error(r.rejection.reason);
  return r.object as T;
};

const SERVICE = read<ServiceObject>({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'prod' },
  spec: { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }] },
});

describe('endpoint entries', () => {
  it('have the keys, order and text of the spread form, with and without hints (500 random slices)', () => {
    const rnd = prng(4015);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const NAMES = ['a', 'b', 'c', 'node-1', 'node-2'];
    let withNodes = 0;
    for (let n = 0; n < 500; n++) {
      const raw = Array.from({ length: 1 + Math.floor(rnd() * 6) }, (_, i) => ({
        addresses: [`10.1.${n % 250}.${i + 1}`],
        conditions: { ready: rnd() < 0.7, serving: rnd() < 0.8, terminating: rnd() < 0.2 },
        nodeName: pick(NAMES),
        zone: pick(['', 'a', 'b']),
        ...(rnd() < 0.5
          ? {
              hints: {
                forZones: Array.from({ length: Math.floor(rnd() * 3) }, () => ({ name: pick(NAMES) })),
                ...(rnd() < 0.5
                  ? { forNodes: Array.from({ length: Math.floor(rnd() * 3) }, () => ({ name: pick(NAMES) })) }
                  : {}),
              },
            }
          : {}),
      }));
      const slice = read<EndpointSliceObject>({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'web-1', namespace: 'prod', labels: { 'kubernetes.io/service-name': 'web' } },
        addressType: 'IPv4',
        ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
        endpoints: raw,
      });
      const entry = buildServiceEntry(SERVICE, [slice]);
      const got = entry!.ports[0]!.endpoints;
      const want = slice.endpoints
        .map((e) => reference({ ...e, ip: e.addresses[0]!, port: 8080 }))
        .sort((a, b) => byCodeUnit(a.ip, b.ip));
      expect(got.map((e) => JSON.stringify(e))).toEqual(want.map((e) => JSON.stringify(e)));
      for (const e of got) {
        expect(Object.isFrozen(e)).toBe(true);
        if (e.hintNodes) withNodes++;
      }
    }
    expect(withNodes).toBeGreaterThan(100); // both literals are exercised
  });
});
