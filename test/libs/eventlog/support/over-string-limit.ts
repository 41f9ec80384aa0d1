import { readKubeObject, type KubeObject } from '../../../../libs/model/index.ts';

/** V8's longest string on 64-bit: a checkpoint past it cannot exist as one text. */
export const MAX_STRING = 2 ** 29 - 24;

/**
 * 13,500 Nodes, each with the same 40 KB annotation (objects keep annotations): ~545 M characters
 * of checkpoint JSON, past MAX_STRING. The objects share one annotation string, so holding them
 * costs little; only a checkpoint's text (or pieces) is that large.
 */
export function nodesPastStringLimit(): { objects: KubeObject[]; pad: string } {
  const pad = 'a'.repeat(40_000);
  const objects = Array.from({ length: 13_500 }, (_, i) => {
    const r = readKubeObject({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: `node-${i}`, annotations: { pad } },
      status: { addresses: [{ type: 'InternalIP', address: `172.16.${i >> 8}.${i & 255}` }] },
    });
    if (!r.ok) throw new Error(r.rejection.reason);
    return r.object;
  });
  return { objects, pad };
}
