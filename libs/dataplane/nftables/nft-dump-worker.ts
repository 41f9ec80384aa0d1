// Worker thread of the whole-table read (NftNetlinkRunner.listTable, through NftDumpThread): dumps
// the elements of the sets it is handed over sockets of its own and hands back each set's raw
// messages. nf_tables finds each set by a walk of the table's set list inside the reading thread's
// recvmsg (~n²/2 set visits for a whole read of n endpoint maps), so a share of the dumps read here
// runs on another core beside the main thread's share (bench/nftables/parallel-read-probe.ts: two
// whole reads at once took about as long as one alone). Decoding stays with the caller.
//   request  { id, table: TableRef, sets: string[] }
//   replies  { id, from, payloads: (Uint8Array[] | null)[] }  sets[from..] in order, a chunk at a time
//              (null: the set is gone, ENOENT), so the caller decodes them while it dumps its own;
//            then { id, done: true }, or { id, error: string } (the caller reads the rest itself)
//   { cancel: id }: takes no more of that request's sets; the dumps in flight end, then { id, done: true }
//              (the caller gave up the read: a resync giving way to an apply)
//   { close: true }: closes the sockets and ends the thread (so does an uncaught error, after
//              { id, error, fatal: true } to every request in flight)
import { parentPort } from 'node:worker_threads';
import { NetlinkError, NFT_MSG, dumpRequest, nftType, type TableRef } from '../../netlink/index.ts';
import { nfnetlinkConnection } from './nft-socket.ts';

/** Sockets this thread spreads its dumps over (one dump at a time per socket, as in the runner). */
const SOCKETS = 8;

export interface DumpWorkerRequest {
  readonly id: number;
  readonly table: TableRef;
  readonly sets: readonly string[];
}
export type DumpWorkerReply =
  | { readonly id: number; readonly from: number; readonly payloads: (Uint8Array[] | null)[] }
  | { readonly id: number; readonly done: true }
  | { readonly id: number; readonly error: string; readonly fatal?: true };

/** Sets per chunk of replies. */
const CHUNK = 256;

const conns = Array.from({ length: SOCKETS }, () => nfnetlinkConnection(4 * 1024 * 1024, 1024 * 1024, false));

/** Requests whose caller gave up: no more of their sets are taken. */
const cancelled = new Set<number>();

/** Dumps `req.sets` over the sockets and posts them in order, a chunk at a time as each completes. */
async function dumpAll(req: DumpWorkerRequest): Promise<void> {
  const out: (Uint8Array[] | null | undefined)[] = new Array(req.sets.length).fill(undefined);
  let next = 0;
  let posted = 0;
  const postReady = () => {
    let end = posted;
    while (end < out.length && out[end] !== undefined && end - posted < CHUNK) end++;
    if (end - posted === CHUNK || (end === out.length && end > posted)) {
      const payloads = out.slice(posted, end) as (Uint8Array[] | null)[];
      parentPort?.postMessage({ id: req.id, from: posted, payloads } satisfies DumpWorkerReply);
      out.fill(null, posted, end); // posted: let go here
      posted = end;
      postReady();
    }
  };
  await Promise.all(
    conns.map(async (conn) => {
      for (;;) {
        if (cancelled.has(req.id)) return;
        const i = next++;
        const set = req.sets[i];
        if (set === undefined) return; // every set taken
        try {
          const msgs = await conn.request({
            type: nftType(NFT_MSG.GETSETELEM),
            payload: dumpRequest(req.table, set),
            dump: true,
            operation: `dump elements of ${set}`,
          });
          // a copy of each: a payload is a view into its datagram's buffer, which a post would clone whole
          out[i] = msgs.map((m) => new Uint8Array(m.payload));
        } catch (e) {
          // a set deleted since the caller's set dump: absent, as the runner reads it
          if (!(e instanceof NetlinkError && e.code === 'ENOENT')) throw e;
          out[i] = null;
        }
        postReady();
      }
    }),
  );
}

/** Requests being dumped, told of a fatal error. */
const inFlight = new Set<number>();
let ended = false;

/**
 * Closes the sockets, then the port: the thread ends once nothing is left on its loop. Nothing
 * else may end it while a socket is open: a thread ended while a socket's callback can still run
 * into JavaScript takes the whole process down inside the netlink addon (a terminate() did, with
 * FATAL ERROR napi_define_properties; an uncaught error mid-read did, with SIGABRT on a
 * Napi::Error).
 */
function end(): void {
  if (ended) return;
  ended = true;
  for (const c of conns) c.close();
  parentPort?.close();
}

// An error nothing caught (a bug here, a callback that throws): every read waiting on this
// thread is told, and the thread ends the safe way; each caller dumps what it was not handed.
function fatal(e: unknown): void {
  if (ended) return;
  const error = `died: ${e instanceof Error ? e.message : String(e)}`;
  for (const id of inFlight) parentPort?.postMessage({ id, error, fatal: true } satisfies DumpWorkerReply);
  inFlight.clear();
  end();
}
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

parentPort?.on('message', (req: DumpWorkerRequest | { close: true } | { cancel: number }) => {
  if ('close' in req) return end();
  if ('cancel' in req) {
    if (inFlight.has(req.cancel)) cancelled.add(req.cancel);
    return;
  }
  inFlight.add(req.id);
  // a request a fatal error already answered is not answered again
  const reply = (m: DumpWorkerReply) => {
    cancelled.delete(req.id);
    if (inFlight.delete(req.id)) parentPort?.postMessage(m);
  };
  dumpAll(req).then(
    () => reply({ id: req.id, done: true }),
    (e: unknown) => reply({ id: req.id, error: (e as Error).message }),
  );
});
