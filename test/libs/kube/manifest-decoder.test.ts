// ManifestDecoder (libs/kube/manifest-decoder.ts, probe10 H9): a file is decoded on a worker thread
// (the event loop turns meanwhile), to exactly what parseManifestFile gives on this thread, and a
// file's decode is kept by content hash, so the next source (a new leadership term) sharing the
// decoder does not decode unchanged files again.

import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  INLINE_MAX_BYTES,
  ManifestDecoder,
  ManifestsSource,
  parseManifestFile,
  type KnownObjects,
  type KubeEvent,
  type KubeKind,
  type RawKubeObject,
} from '../../../libs/kube/index.ts';
import { endpointSlice, service } from './manifest-fixtures.ts';

const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
/** Every text to the worker: these cases are about the worker (small texts decode inline by default). */
const decoder = () => {
  const d = new ManifestDecoder({ inlineMaxBytes: 0 });
  cleanups.push(() => d.close());
  return d;
};

describe('ManifestDecoder', () => {
  it('decodes on another thread, to what parseManifestFile gives, a bad document refused alone', async () => {
    const d = decoder();
    const text = `${service('web')}${endpointSlice('web-1', 'web', 200)}---\nkind: [unclosed\n---\na: *nowhere\n`;
    let turns = 0;
    let pending = true;
    const tick = setInterval(() => (turns += pending ? 1 : 0), 1);
    const parse = await d.decode('/m/a.yaml', sha(text), text).finally(() => {
      pending = false;
      clearInterval(tick);
    });
    expect(turns).toBeGreaterThan(0); // the event loop ran while the decode was in flight
    expect(parse).toEqual(parseManifestFile(text));
    const clean = `${service('web')}---\na: *nowhere\n`; // an alias to another document's anchor
    const alone = await d.decode('/m/b.yaml', sha(clean), clean);
    expect(alone).toEqual(parseManifestFile(clean));
    expect(alone.ok && alone.items.length).toBe(1);
    expect(alone.ok && alone.rejected.map((r) => r.document)).toEqual([2]);
  });

  it('decodes a small text on the calling thread (no worker started), a larger one on the worker', async () => {
    const d = new ManifestDecoder();
    cleanups.push(() => d.close());
    const small = service('web') + endpointSlice('web-1', 'web', 10);
    expect(Buffer.byteLength(small)).toBeLessThanOrEqual(INLINE_MAX_BYTES);
    expect(await d.decode('/m/small.yaml', sha(small), small)).toEqual(parseManifestFile(small));
    expect(d.threadRunning).toBe(false);
    const large = service('big') + endpointSlice('big-1', 'big', 1000);
    expect(Buffer.byteLength(large)).toBeGreaterThan(INLINE_MAX_BYTES);
    expect(await d.decode('/m/large.yaml', sha(large), large)).toEqual(parseManifestFile(large));
    expect(d.threadRunning).toBe(true);
    expect(d.decodes).toBe(2);
  });

  it('keeps each file’s decode by content hash: the same bytes are decoded once, a change again', async () => {
    const d = decoder();
    const one = service('web');
    const two = service('web', 81);
    await d.decode('/m/a.yaml', sha(one), one);
    await d.decode('/m/a.yaml', sha(one), one);
    expect(d.decodes).toBe(1);
    await d.decode('/m/a.yaml', sha(two), two);
    expect(d.decodes).toBe(2);
    d.retain('/n', new Set()); // another directory: nothing of /m forgotten
    await d.decode('/m/a.yaml', sha(two), two);
    expect(d.decodes).toBe(2);
    d.retain('/m', new Set(['/m/other.yaml'])); // a.yaml left the directory
    await d.decode('/m/a.yaml', sha(two), two);
    expect(d.decodes).toBe(3);
  });

  it('a file that kills the decoder thread (out of memory) is refused; the next file decodes on a fresh thread', async () => {
    const d = new ManifestDecoder({ heapMb: 20, inlineMaxBytes: 0 });
    cleanups.push(() => d.close());
    const big = `a:\n${'- 1\n'.repeat(100_000)}`; // its syntax tree does not fit in 20 MB
    const refused = await d.decode('/m/big.yaml', sha(big), big);
    expect(refused).toEqual({ ok: false, reason: expect.stringMatching(/^cannot decode: the decoder thread /) });
    expect(await d.decode('/m/big.yaml', sha(big), big)).toBe(refused); // the same bytes: not decoded again
    const small = service('small');
    expect(await d.decode('/m/small.yaml', sha(small), small)).toEqual(parseManifestFile(small));
    expect(d.decodes).toBe(2);
  });

  it('a new source sharing the decoder (the next leadership term) does not decode unchanged files again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-decoder-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'big.yaml'), service('big') + endpointSlice('big-1', 'big', 1000));
    await writeFile(join(dir, 'small.yaml'), service('small', 81));
    const d = decoder();
    const events: KubeEvent[] = [];
    const term = async (known?: KnownObjects) => {
      const s = new ManifestsSource({ dir, sink: (e) => void events.push(e), watch: false, known, decoder: d });
      await s.start();
      await s.stop();
    };
    await term();
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`).sort()).toEqual([
      'ADDED big',
      'ADDED big-1',
      'ADDED small',
    ]);
    expect(d.decodes).toBe(2);
    const objects = new Map<KubeKind, RawKubeObject[]>();
    for (const e of events) objects.set(e.kind, [...(objects.get(e.kind) ?? []), e.object]);
    await term({ objects, lastResourceVersion: events.at(-1)!.resourceVersion });
    expect(events).toHaveLength(3); // nothing changed
    expect(d.decodes).toBe(2); // and nothing was decoded again
  });

  it('a source stopped during a decode stops without error; the next source gets that decode without decoding again', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sb-decoder-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'big.yaml'), service('big') + endpointSlice('big-1', 'big', 1000));
    const d = decoder();
    const first = new ManifestsSource({ dir, sink: () => {}, watch: false, decoder: d });
    const started = first.start();
    while (first.health().decodingFiles === 0) await new Promise((r) => setTimeout(r, 5));
    await first.stop(); // a step-down while the file decodes
    await expect(started).resolves.toBeUndefined();
    expect(first.health().errors).toBe(0);
    const events: KubeEvent[] = [];
    const next = new ManifestsSource({ dir, sink: (e) => void events.push(e), watch: false, decoder: d });
    await next.start();
    await next.stop();
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`).sort()).toEqual(['ADDED big', 'ADDED big-1']);
    expect(d.decodes).toBe(1);
  });
});
