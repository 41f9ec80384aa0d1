// The whole-table read's second reader: a worker thread (nft-dump-worker.ts) that dumps a share of
// the table's set elements on sockets of its own while the calling thread dumps the rest, so the
// kernel's per-dump walks of the set list run on two cores (docs/benchmarks.md, nftables).
// Started on first use and kept, unref'd (an idle thread keeps no process alive); a thread that
// cannot start or dies fails the calls waiting on it, and the caller dumps those sets itself.
import type { Worker } from 'node:worker_threads';
import type { TableRef } from '../../netlink/index.ts';
import { startModuleWorker } from '../../threads/index.ts';
import type { DumpWorkerReply, DumpWorkerRequest } from './nft-dump-worker.ts';

type Chunk = (from: number, payloads: (Buffer[] | null)[]) => void;

/**
 * The worker's heap, capped far above what it holds (a chunk of 256 sets' messages: ~20 MB of RSS
 * at 10k services) so that a runaway thread costs a thread, not the node's memory: V8 ends a
 * worker at its limit (ERR_WORKER_OUT_OF_MEMORY), its sockets are closed with it, the read goes on
 * in the calling thread and the next whole read starts another (test/netns/nft-dump-thread.test.ts).
 */
export const DUMP_WORKER_LIMITS = { maxOldGenerationSizeMb: 512 } as const;
type Pending = { onChunk: Chunk; resolve: () => void; reject: (e: Error) => void };

export class NftDumpThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /** `start`: how to start the worker (tests pass one that fails, or one with a tiny heap). */
  constructor(
    private readonly start: () => Worker = () =>
      startModuleWorker(import.meta.url, 'nft-dump-worker', { resourceLimits: DUMP_WORKER_LIMITS }),
  ) {}

  /**
   * Dumps the elements of `sets` and hands their raw messages to `onChunk` a chunk at a time, in
   * order (`from`: the index in `sets` of the chunk's first; null: the set is gone). Resolves once
   * all were handed over; rejects when the thread cannot start, dies, or a dump fails otherwise
   * than ENOENT (the chunks handed over before stand). Once `signal` fires the thread takes no
   * more of the sets; the call resolves when its dumps in flight ended (so the next call never
   * shares the thread's sockets with this one), having handed over only some.
   */
  dump(table: TableRef, sets: readonly string[], onChunk: Chunk, signal?: AbortSignal): Promise<void> {
    let w: Worker;
    try {
      w = this.running();
    } catch (e) {
      return Promise.reject(new Error(`nftables dump thread: ${(e as Error).message}`));
    }
    const id = this.nextId++;
    const cancel = () => w.postMessage({ cancel: id });
    const done = new Promise<void>((resolve, reject) => {
      this.pending.set(id, { onChunk, resolve, reject });
      w.postMessage({ id, table, sets } satisfies DumpWorkerRequest);
    });
    if (!signal) return done;
    if (signal.aborted) cancel();
    else signal.addEventListener('abort', cancel, { once: true });
    return done.finally(() => signal.removeEventListener('abort', cancel));
  }

  /** Ends the thread (it closes its sockets first: see the worker); calls waiting on it fail. */
  close(): void {
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new Error('nftables dump thread: closed'));
    w?.postMessage({ close: true });
  }

  private running(): Worker {
    if (this.worker) return this.worker;
    const w = this.start();
    w.unref();
    w.on('message', (m: DumpWorkerReply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      if ('payloads' in m) {
        p.onChunk(
          m.from,
          m.payloads.map((msgs) =>
            msgs === null ? null : msgs.map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)),
          ),
        );
        return;
      }
      this.pending.delete(m.id);
      // a thread that is ending takes no more work: the next call starts another
      if ('error' in m && m.fatal && this.worker === w) this.worker = undefined;
      if ('error' in m) p.reject(new Error(`nftables dump thread: ${m.error}`));
      else p.resolve();
    });
    w.on('error', (e) => this.died(w, e.message));
    w.on('exit', (code) => this.died(w, `exited (${code})`));
    this.worker = w;
    return w;
  }

  private died(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = undefined; // the next call starts another
    this.failAll(new Error(`nftables dump thread: ${why}`));
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
