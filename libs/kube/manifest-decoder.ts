// Decodes manifest files for the planner's manifests source off its event loop, and keeps the last
// decode of each file so a new source (the next leadership term) does not decode it again.
//
// Why a worker thread, not chunk-and-yield (probe10 H9): the yaml package composes and converts
// each document in one synchronous call, so one large document (a 5.7 MB EndpointSlice of 100 000
// endpoints) blocks for seconds however the file is cut, and the parse's garbage (a syntax tree
// several times the text) is then collected in pauses of the same loop. The planner's loop renews
// its leader lease; blocked past the lease TTL it stepped down, and every new term decoded the same
// file again. On a worker the parse and its garbage stay on the worker's heap; the loop receives the
// decoded items (a structured clone: one pass over the objects) and stays free meanwhile.
//
// Cache: per file path, the content hash and its decode (the promise, so a second request for a
// decode in flight shares it). One entry per file, the one its tracker holds anyway, so it costs
// no memory beyond the current files; `retain` forgets files no longer in the directory. Sources
// share the process's decoder (`shared()`) unless given one. A failed
// decode (the worker died, out of memory on a hostile file) is a refusal of that content, cached
// like any other: the same bytes are not decoded again until they change.

import { sep } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../threads/index.ts';
import { parseManifestFile, type ManifestFileParse } from './manifest-objects.ts';

let shared: ManifestDecoder | undefined;

interface Pending {
  readonly resolve: (parse: ManifestFileParse) => void;
}

export interface ManifestDecoderOptions {
  /**
   * 'worker' (default); 'caller' decodes on the calling thread, as before probe10 H9: the baseline
   * of bench/sources/manifests-decode-bench.ts.
   */
  readonly thread?: 'worker' | 'caller';
  /** The worker's heap limit (V8 old generation, MB; default: node's); past it the content is refused. */
  readonly heapMb?: number;
  /**
   * Texts of at most this many bytes decode on the calling thread (default INLINE_MAX_BYTES; 0:
   * every text goes to the worker). A worker round trip costs more than decoding a small file, and
   * a new leader's first decodes wait for the worker to start (0.6–2 s from the TypeScript sources):
   * its console and /status said NOT SYNCED for that long after a failover.
   */
  readonly inlineMaxBytes?: number;
}

/** 32 KiB: ~550 endpoints of an EndpointSlice, tens of ms of YAML decoding on a quiet core. */
export const INLINE_MAX_BYTES = 32 * 1024;

export class ManifestDecoder {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly cache = new Map<string, { hash: string; parse: Promise<ManifestFileParse> }>();
  private closed = false;
  /** Texts decoded (cache misses), for tests. */
  decodes = 0;

  /** Whether a worker thread runs now (small texts never start one). */
  get threadRunning(): boolean {
    return this.worker !== undefined;
  }

  constructor(private readonly options: ManifestDecoderOptions = {}) {}

  /** The decode of `text`, the content of `path` whose SHA-256 is `hash`. Never rejects. */
  decode(path: string, hash: string, text: string): Promise<ManifestFileParse> {
    const hit = this.cache.get(path);
    if (hit?.hash === hash) return hit.parse;
    const parse = this.run(text);
    this.cache.set(path, { hash, parse });
    return parse;
  }

  /** Forgets the decodes of files under `dir` other than `paths` (those still there). */
  retain(dir: string, paths: ReadonlySet<string>): void {
    const under = dir.endsWith(sep) ? dir : dir + sep;
    for (const p of [...this.cache.keys()]) if (p.startsWith(under) && !paths.has(p)) this.cache.delete(p);
  }

  /**
   * The process's decoder, made on first use and never closed (its idle worker does not keep the
   * process alive): every manifests source that is given none shares it, so a planner's next
   * leadership term finds its files decoded, and a process starts one worker, not one per source.
   */
  static shared(): ManifestDecoder {
    shared ??= new ManifestDecoder();
    return shared;
  }

  /** Stops the worker; decodes in flight are refused. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.worker = undefined;
    this.fail('the decoder was closed');
    await w?.terminate();
  }

  private run(text: string): Promise<ManifestFileParse> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'cannot decode: the decoder was closed' });
    this.decodes += 1;
    if (
      this.options.thread === 'caller' ||
      Buffer.byteLength(text) <= (this.options.inlineMaxBytes ?? INLINE_MAX_BYTES)
    )
      return Promise.resolve(parseManifestFile(text));
    let w: Worker;
    try {
      w = this.thread();
    } catch (e) {
      return Promise.resolve({ ok: false, reason: `cannot decode: ${e instanceof Error ? e.message : String(e)}` });
    }
    const id = this.nextId++;
    const answer = new Promise<ManifestFileParse>((resolve) => this.pending.set(id, { resolve }));
    w.ref(); // unref'd again once idle (the 'message' handler)
    w.postMessage({ id, text });
    return answer;
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = startWorker(this.options.heapMb);
    w.on('message', (m: { id: number; parse: ManifestFileParse }) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m.parse);
      if (this.pending.size === 0) w.unref(); // an idle decoder never keeps the process alive
    });
    const died = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined; // the next decode starts a fresh one
      this.fail(`the decoder thread ${why}`);
    };
    w.on('error', (e) => died(`failed: ${e.message.split('\n')[0]}`));
    w.on('exit', (code) => died(`exited (code ${code})`));
    this.worker = w;
    return w;
  }

  private fail(why: string): void {
    for (const p of this.pending.values()) p.resolve({ ok: false, reason: `cannot decode: ${why}` });
    this.pending.clear();
  }
}

/** The worker (libs/threads/module-worker.ts says where it is found from sources and from the build). */
function startWorker(heapMb: number | undefined): Worker {
  return startModuleWorker(
    import.meta.url,
    'manifest-decode-worker',
    heapMb ? { resourceLimits: { maxOldGenerationSizeMb: heapMb } } : {},
  );
}
