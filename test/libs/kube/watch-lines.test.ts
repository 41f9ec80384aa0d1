// Byte-level tests of the watch stream's line splitter (nats.js style): the stream is fed in
// every chunking, down to one byte at a time, and must decode to the same documents.

import { describe, expect, it } from 'vitest';
import { jsonLines } from '../../../libs/kube/watch-lines.ts';

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const v of jsonLines(source, 'test')) out.push(v);
  return out;
}

const events = [
  { type: 'ADDED', object: { metadata: { name: 'café', resourceVersion: '1' } } },
  {
    type: 'MODIFIED',
    object: { metadata: { name: 'web', annotations: { note: '日本語 🚀 ok' }, resourceVersion: '2' } },
  },
  { type: 'BOOKMARK', object: { metadata: { resourceVersion: '3' } } },
];
const stream = new TextEncoder().encode(events.map((e) => JSON.stringify(e)).join('\n') + '\n\n');

describe('watch stream line splitter', () => {
  it('decodes multi-byte UTF-8 split across chunks, fed one byte at a time', async () => {
    expect(await collect(chunked(stream, 1))).toEqual(events);
  });

  it('gives the same documents for every chunk size', async () => {
    for (const size of [2, 3, 5, 7, 64, stream.length]) expect(await collect(chunked(stream, size))).toEqual(events);
  });

  it('yields a line as soon as its newline arrives (the informer awaits each event)', async () => {
    const seen: unknown[] = [];
    let fed = 0;
    async function* slow(): AsyncGenerator<Uint8Array> {
      for (const b of stream) {
        fed += 1;
        yield Uint8Array.of(b);
      }
    }
    const firstLineBytes = new TextEncoder().encode(JSON.stringify(events[0]) + '\n').length;
    for await (const v of jsonLines(slow(), 'test')) {
      if (seen.length === 0) expect(fed).toBe(firstLineBytes);
      seen.push(v);
    }
    expect(seen).toHaveLength(3);
  });

  it('refuses a line that is not JSON, and a stream cut inside a line, naming the request', async () => {
    const bad = new TextEncoder().encode('{"type":"ADDED"}\nnot json\n');
    await expect(collect(chunked(bad, 1))).rejects.toThrow(
      /^test: watch stream sent a line that is not JSON: not json$/,
    );
    const cut = new TextEncoder().encode('{"type":"ADDED"}\n{"type":"MOD');
    await expect(collect(chunked(cut, 1))).rejects.toThrow(/^test: watch stream ended inside a line$/);
    // A stream cut inside a multi-byte character is cut inside a line too.
    const cutChar = new TextEncoder().encode('{"a":"é"}\n{"b":"é').subarray(0, -1);
    await expect(collect(chunked(cutChar, 1))).rejects.toThrow(/ended inside a line/);
  });
});
