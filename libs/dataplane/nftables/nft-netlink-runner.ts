// NftRunner over nf_tables netlink: a transaction becomes one NFNL batch (BEGIN, ops, END) in
// one datagram, which the kernel applies atomically like `nft -f`; the table is read back with
// dumps. No `nft` process, no full-ruleset cache: an endpoint change costs its own few messages.
import type { NetlinkConnection } from '../../netlink/index.ts';
import type { NetlinkRequest } from '../../netlink/index.ts';
import { NetlinkError } from '../../netlink/index.ts';
import {
  NFPROTO,
  NFT_MSG,
  NFT_SET_FLAGS,
  batchBegin,
  batchEnd,
  decodeChain,
  decodeGen,
  decodeSet,
  decodeSetElems,
  decodeTable,
  delChain,
  delSet,
  delTable,
  dumpRequest,
  flushRules,
  getChainRequest,
  getGenRequest,
  getSetElemRequest,
  newChain,
  newRule,
  newSet,
  newTable,
  nftType,
  setElems,
  type DumpedElement,
  type NftElement,
  type NftMessage,
  type NftNotification,
  type TableRef,
} from '../../netlink/index.ts';
import { scanRule, type RuleDigestParts } from '../../netlink/index.ts';
import { summarizeTokens } from './nft-chain-summary.ts';
import {
  compileElement,
  compileHook,
  compileMapType,
  compileRule,
  compileSetDecl,
  elementsText,
  type AnonymousSet,
} from './nft-rule-compiler.ts';
import { isEndpointMap, isLearnedSet } from './nft-objects.ts';
import type { NftReadScope, NftRunner } from './nft-runner.ts';
import { NftChangeLog, type NftChangeEntry, type NftTableChanges } from './nft-change-log.ts';
import { NftNotificationListener } from './nft-notification-listener.ts';
import { nftDriftSignal } from './nft-drift-signal.ts';
import { describeOp, invalidObjectName, type NftOp, type NftTransaction } from './nft-transaction.ts';
import type { NftObjects } from './nft-objects.ts';
import { emitFullLoad } from './plan-nft-update.ts';
import { checkSkeleton, SKELETON_CHAINS, SKELETON_MAPS, SKELETON_SETS } from './nft-skeleton.ts';
import type { NftReadBack } from './read-nft-table.ts';
import { nfnetlinkConnection } from './nft-socket.ts';
import { NftDumpThread } from './nft-dump-thread.ts';
import { availableParallelism } from 'node:os';

// NFTA_SET_ELEM_LIST_ELEMENTS is a nested attribute: its length field is 16 bits.
const MAX_ELEMENTS_BYTES = 60_000;
/**
 * Most bytes of a set declaration and its elements glued into one batch; a runner lowers it to a
 * quarter of its largest batch (gluedBytesFor), which at the kernel's default wmem_max is ~100 KiB.
 */
const MAX_GLUED_BYTES = 1024 * 1024;
const READER_SOCKETS = 16;
/** Above this many chains a read-back dumps rules chain by chain (see listTable). */
const TABLE_WIDE_RULE_DUMP_CHAINS = 30_000;
// the receive buffer each recvmsg passes (why: nft-socket.ts); tests read it from here
export { RECV_DATAGRAM_BYTES } from './nft-socket.ts';

export interface NftNetlinkRunnerOptions {
  /** Socket send buffer to ask for; the largest atomic batch is what the kernel grants (2 × wmem_max). */
  readonly sendBufferSize?: number;
  readonly recvBufferSize?: number;
  /** Cap on one batch's bytes below what the socket allows (tests force multi-batch loads with it). */
  readonly maxBatchBytes?: number;
  /** Read-backs dump rules chain by chain above this many chains (default 30 000; see listTable). */
  readonly tableWideRuleDumpChains?: number;
  /** Receive buffer of the notification socket (see watch); tests shrink it to make it overflow. */
  readonly monitorRecvBufferSize?: number;
  /** Node binary that runs the notification listener (default process.execPath); tests pass one that fails. */
  readonly monitorExecPath?: string;
  /** How long watch waits for the listener to join the group (default 10 s). */
  readonly monitorReadyTimeoutMs?: number;
  /**
   * The whole read's second reader (nft-dump-thread.ts): default one where the machine has more
   * than one CPU; false: none. Tests pass one whose worker fails.
   */
  readonly dumpThread?: NftDumpThread | false;
  /** Fewest sets a whole read hands a share of to the dump thread (default DUMP_THREAD_MIN_SETS). */
  readonly dumpThreadMinSets?: number;
}

/**
 * Below this many sets a whole read dumps them all in-thread: the hand-over costs more than the
 * second core saves while the kernel's walks are short (1k endpoint maps: 215 ms with the thread
 * against 190 ms without; 10k: 4.8–5.6 s against 6.7–7.3 s; docs/benchmarks.md, nftables).
 */
const DUMP_THREAD_MIN_SETS = 4096;

/** One dump of a whole read and what to do with its messages. */
interface DumpJob {
  readonly request: NetlinkRequest;
  readonly take: (msgs: { payload: Buffer }[]) => void;
}

/** How long changesSince waits for the notifications of a generation GETGEN already reports. */
const NOTIFICATION_WAIT_MS = 1000;
/**
 * Our own transactions above this many messages run with no listener: with one, nf_tables builds
 * a notification per object it commits (~250k for a 10k-service load), which costs commit time
 * and overflows the socket anyway. The next `watch` starts it again, with coverage from then.
 */
const UNMONITORED_RUN_MESSAGES = 5_000;

/** Where the last whole-table read-back's time went (ms), for benchmarks. */
export interface NetlinkReadStats {
  /** Table get, chain and set dumps, and the table-wide rule dump. */
  readonly listMs: number;
  /** The per-set element dumps (and per-chain rule dumps above the threshold), over the reader sockets. */
  readonly dumpsMs: number;
  /** Digesting chains and turning elements into text. */
  readonly digestMs: number;
  readonly dumps: number;
  /** Of those, the set dumps the dump thread read (nft-dump-thread.ts). */
  readonly threadDumps: number;
  /** Why the dump thread's share was dumped here instead, when it was. */
  readonly threadError?: string;
}

/** How the last run was sent, for tests and benchmarks. */
export interface NetlinkRunStats {
  readonly messages: number;
  readonly batches: number;
  readonly bytes: number;
  /** Time compiling the transaction to messages and splitting them into batches. */
  readonly compileMs: number;
  /** Per batch: from its send until the kernel's ack (the kernel's commit, and the wait for a core). */
  readonly batchMs: readonly number[];
}

export class NftNetlinkRunner implements NftRunner {
  readonly backend = 'netlink';
  lastRun: NetlinkRunStats = { messages: 0, batches: 0, bytes: 0, compileMs: 0, batchMs: [] };
  lastRead: NetlinkReadStats = { listMs: 0, dumpsMs: 0, digestMs: 0, dumps: 0, threadDumps: 0 };
  /** The whole read's second reader (nft-dump-thread.ts), where there is a second core. */
  private readonly dumpThread: NftDumpThread | undefined;
  private readonly conn: NetlinkConnection;

  constructor(private readonly options: NftNetlinkRunnerOptions = {}) {
    this.conn = this.connection(options.recvBufferSize ?? 16 * 1024 * 1024, options.sendBufferSize ?? 64 * 1024 * 1024);
    this.dumpThread =
      options.dumpThread === false
        ? undefined
        : (options.dumpThread ?? (availableParallelism() > 1 ? new NftDumpThread() : undefined));
  }

  /** Opens a socket and proves nf_tables answers (a table lookup), so callers can fall back to `nft`. */
  static async open(options: NftNetlinkRunnerOptions = {}): Promise<NftNetlinkRunner> {
    const r = new NftNetlinkRunner(options);
    try {
      await r.getTable({ family: NFPROTO.inet, table: 'switchboard-probe' });
      return r;
    } catch (e) {
      r.close();
      throw e;
    }
  }

  /** Largest batch that fits one datagram (the kernel needs BEGIN..END in one skb). */
  get maxBatchBytes(): number {
    const socket = this.conn.bufferSizes().send - 4096;
    return Math.min(socket, this.options.maxBatchBytes ?? socket);
  }

  /** Most bytes glued to one set declaration in this runner's batches (see gluedBytesFor). */
  get maxGluedBytes(): number {
    return gluedBytesFor(this.maxBatchBytes);
  }

  async run(tx: NftTransaction): Promise<void> {
    const load = tx.fullLoad;
    if (!load && tx.error) throw tx.error;
    const t0 = performance.now();
    // Grammar errors surface here, before any send.
    const maxBytes = this.maxBatchBytes;
    const glued = gluedBytesFor(maxBytes);
    const compiled = load ? compileFullLoad(tx.family, tx.table, load, glued) : compileTransaction(tx, glued);
    const { messages } = compiled;
    const batches = splitBatches(compiled, maxBytes);
    const compileMs = performance.now() - t0;
    let bytes = 0;
    const batchMs: number[] = [];
    if (messages.length > UNMONITORED_RUN_MESSAGES) {
      this.ownStop = true; // a loss we caused, of notifications about our own commits: no drift signal
      try {
        this.listener?.stop(`our own transaction of ${messages.length} messages ran unmonitored`);
      } finally {
        this.ownStop = false;
      }
    }
    for (const b of batches) {
      bytes += b.reduce((a, m) => a + m.payload.length + 16, 0);
      const framed = [batchBegin(), ...b, batchEnd()];
      const t1 = performance.now();
      await this.conn.sendBatch(framed.map(toRequest), framed.length - 2);
      batchMs.push(performance.now() - t1);
    }
    this.lastRun = { messages: messages.length, batches: batches.length, bytes, compileMs, batchMs };
  }

  /** Change logs of the watched tables, by `family table`. */
  private readonly logs = new Map<string, NftChangeLog>();
  /** Who hears of drift signals per watched table (see watch), by `family table`. */
  private readonly driftHooks = new Map<string, { family: number; table: string; call: (why: string) => void }>();
  /** Who hears that the running listener was lost (see watch), by `family table`. */
  private readonly lostHooks = new Map<string, (why: string) => void>();
  /** run() is stopping the listener itself (see run): that loss is no drift signal. */
  private ownStop = false;

  /**
   * Starts recording which objects of the table commits change (nf_tables notifications on a
   * socket of its own, NftChangeLog), or restarts the record after notifications were lost:
   * once this resolves, changesSince can vouch for every commit after the generation it read.
   * Cheap when already recording (no request).
   */
  async watch(
    family: string,
    table: string,
    onDrift?: (why: string) => void,
    onLost?: (why: string) => void,
  ): Promise<void> {
    const t = tableRef(family, table);
    const key = `${family} ${table}`;
    if (onDrift) this.driftHooks.set(key, { family: t.family, table, call: onDrift });
    if (onLost) this.lostHooks.set(key, onLost);
    let log = this.logs.get(key);
    if (!log) this.logs.set(key, (log = new NftChangeLog(t.family, table, classifyChange)));
    try {
      await this.subscribe();
    } catch (e) {
      log.lose((e as Error).message); // changesSince then says why it cannot vouch
      throw e;
    }
    if (!log.covering) log.begin(await this.generation());
  }

  /**
   * The objects of the table that the commits after generation `since` up to `now` changed, as
   * their notifications named them; `{ unknown }` with the reason when the record cannot vouch
   * for that range (not watched, notifications lost, a commit it cannot describe, or `now`'s
   * notifications not arrived within NOTIFICATION_WAIT_MS).
   */
  async changesSince(
    family: string,
    table: string,
    since: number,
    now: number,
  ): Promise<NftTableChanges | { unknown: string }> {
    const log = this.logs.get(`${family} ${table}`);
    if (!log) return { unknown: 'table not watched' };
    const deadline = performance.now() + NOTIFICATION_WAIT_MS;
    for (;;) {
      const r = log.changesSince(since, now);
      if (r !== 'waiting') return r;
      const left = deadline - performance.now();
      if (left <= 0)
        return { unknown: `notifications of generation ${now} not received in ${NOTIFICATION_WAIT_MS} ms` };
      await log.settled(left);
    }
  }

  private listener: NftNotificationListener | undefined;

  /** The notification listener child's PID while it runs (see NftNotificationListener.pid). */
  get notificationListenerPid(): number | undefined {
    return this.listener?.pid;
  }

  private async subscribe(): Promise<void> {
    this.listener ??= new NftNotificationListener(
      (n) => {
        for (const log of this.logs.values()) log.note(n);
        for (const h of this.driftHooks.values()) {
          const why = nftDriftSignal(n, h.family, h.table);
          if (why) h.call(why);
        }
      },
      (why) => {
        for (const log of this.logs.values()) log.lose(why);
        // A table deleted while notifications were lost would go unheard: resync to find out.
        if (!this.ownStop) for (const h of this.driftHooks.values()) h.call(`notifications lost (${why})`);
        if (!this.ownStop) for (const h of this.lostHooks.values()) h(why);
      },
      {
        recvBufferSize: this.options.monitorRecvBufferSize ?? 8 * 1024 * 1024,
        execPath: this.options.monitorExecPath,
        readyTimeoutMs: this.options.monitorReadyTimeoutMs,
      },
    );
    await this.listener.start();
  }

  /** Each batch is one kernel commit. */
  get lastCommits(): number {
    return this.lastRun.batches;
  }

  async generation(): Promise<number> {
    const [reply] = await this.conn.request({
      type: nftType(NFT_MSG.GETGEN),
      payload: getGenRequest(),
      operation: 'get nf_tables generation',
    });
    if (!reply) throw new Error('get nf_tables generation: no reply');
    return decodeGen(reply.payload);
  }

  async listTable(
    family: string,
    table: string,
    scope?: NftReadScope,
    signal?: AbortSignal,
  ): Promise<NftReadBack | undefined> {
    const t = tableRef(family, table);
    if (scope) return this.readScoped(t, scope);
    const t0 = performance.now();
    const head = await this.getTable(t);
    if (!head) return undefined;
    const dump = async (type: number, set?: string) =>
      this.conn.request({
        type: nftType(type),
        payload: dumpRequest(t, set),
        dump: true,
        operation: `dump ${set ?? 'table'} of ${family} ${table}`,
      });
    const chainNames: string[] = [];
    for (const m of await dump(NFT_MSG.GETCHAIN)) {
      if (tableOf(m.payload) !== table) continue; // chain dumps are not filtered by table
      chainNames.push(decodeChain(m.payload).name);
    }
    const sets = (await dump(NFT_MSG.GETSET)).map((m) => decodeSet(m.payload));
    // Rules: one table-wide dump when the table has at most TABLE_WIDE_RULE_DUMP_CHAINS chains,
    // else chain by chain. nf_tables resumes a table-wide rule dump by walking again from the
    // table's first rule to where the last piece stopped: quadratic in the table's rules, which
    // made a read-back of 200k rules (110k chains, endpoint chains) take minutes; a chain's own
    // dump walks only its rules, but costs a dump (request, pieces, done) per chain. At 10k
    // services × 10 endpoints (10k chains, 20k rules, ~320 pieces of 32 KiB) the table-wide dump
    // took 123 ms against seconds for 10k chain dumps. Elements: one dump per set (there is no
    // table-wide element dump). The kernel runs one dump per socket at a time, so they are
    // spread over a few reader sockets.
    const rules = new Map<string, RuleDigestParts[]>();
    const elementsOf = new Map<string, DumpedElement[]>();
    const perChain = chainNames.length > (this.options.tableWideRuleDumpChains ?? TABLE_WIDE_RULE_DUMP_CHAINS);
    if (!perChain) {
      for (const chain of chainNames) rules.set(chain, []);
      for (const m of await dump(NFT_MSG.GETRULE)) {
        const r = scanRule(m.payload);
        rules.get(r.chain)?.push(r); // a chain created since the chain dump: the generation moved
      }
    }
    // Giving way (a resync to an arriving apply): between steps only, never inside a dump, so a
    // socket never holds half a dump for the next read. The listing above is ~0.3 s at 10k; the
    // element dumps below are the seconds, and stop within one dump per socket.
    signal?.throwIfAborted();
    const chainJobs = perChain ? chainNames : [];
    // The set dumps: every other one to the dump thread (nft-dump-thread.ts), the rest here. The
    // kernel's walk to a set grows with its place in the table's set list, so interleaving shares
    // the work about evenly; a read of few sets stays here (a thread's start is not worth it).
    const thread =
      this.dumpThread && sets.length >= (this.options.dumpThreadMinSets ?? DUMP_THREAD_MIN_SETS)
        ? this.dumpThread
        : undefined;
    const threaded = thread ? sets.filter((_, i) => i % 2 === 1) : [];
    const here = thread ? sets.filter((_, i) => i % 2 === 0) : sets;
    const setJob = (s: { name: string }): DumpJob => ({
      request: {
        type: nftType(NFT_MSG.GETSETELEM),
        payload: dumpRequest(t, s.name),
        dump: true,
        operation: `dump elements of ${s.name}`,
      },
      take: (msgs) =>
        elementsOf.set(
          s.name,
          msgs.flatMap((m) => decodeSetElems(m.payload).elements),
        ),
    });
    const jobs: DumpJob[] = [
      ...chainJobs.map(
        (chain): DumpJob => ({
          request: {
            type: nftType(NFT_MSG.GETRULE),
            payload: dumpRequest(t, chain),
            dump: true,
            operation: `dump rules of chain ${chain}`,
          },
          take: (msgs) =>
            rules.set(
              chain,
              msgs.map((m) => scanRule(m.payload)),
            ),
        }),
      ),
      ...here.map(setJob),
    ];
    const t1 = performance.now();
    let threadError: string | undefined;
    const fromThreadSets = new Array<boolean>(threaded.length).fill(false);
    const fromThread = thread
      ?.dump(
        t,
        threaded.map((s) => s.name),
        (from, payloads) =>
          payloads.forEach((msgs, k) => {
            fromThreadSets[from + k] = true;
            const set = threaded[from + k];
            // null: gone since the set dump, read as absent (as ENOENT here)
            if (msgs && set)
              elementsOf.set(
                set.name,
                msgs.flatMap((m) => decodeSetElems(m).elements),
              );
          }),
        signal,
      )
      .catch((e: unknown) => {
        threadError = (e as Error).message;
      });
    await this.dumpOnReaders(jobs, signal);
    await fromThread;
    signal?.throwIfAborted();
    // the thread failed (could not start, died, a dump refused): what it did not hand over is dumped here
    if (threadError !== undefined) await this.dumpOnReaders(threaded.filter((_, k) => !fromThreadSets[k]).map(setJob));

    const t2 = performance.now();
    const skeleton = new Set(SKELETON_CHAINS.map((c) => c.name));
    const chains = new Map<string, string>();
    for (const [name, exprLists] of rules) {
      if (!skeleton.has(name))
        chains.set(
          name,
          summarizeTokens(
            exprLists.length,
            exprLists.flatMap((r) => ruleTokens(r, elementsOf)),
          ),
        );
    }
    const elements = new Map<string, Map<string, string>>();
    const namedSets = new Set<string>();
    const setElementCounts = new Map<string, number>();
    const skeletonSets = new Set([...SKELETON_MAPS, ...SKELETON_SETS].map((x) => x.name));
    for (const s of sets) {
      if (s.flags & NFT_SET_FLAGS.anonymous) continue;
      if (!skeletonSets.has(s.name)) namedSets.add(s.name);
      if (isLearnedSet(s.name)) setElementCounts.set(s.name, elementsOf.get(s.name)?.length ?? 0);
      else elements.set(s.name, elementsText(s, elementsOf.get(s.name) ?? []));
    }
    const skeletonCheck = checkSkeleton(
      (c) => rules.get(c)?.length,
      (s) => elements.has(s),
    );
    this.lastRead = {
      listMs: t1 - t0,
      dumpsMs: t2 - t1,
      digestMs: performance.now() - t2,
      dumps: jobs.length + threaded.length,
      threadDumps: fromThreadSets.filter(Boolean).length,
      ...(threadError === undefined ? {} : { threadError }),
    };
    return {
      tableHandle: Number(head.handle),
      inventory: { chains, sets: namedSets, elements },
      skeletonProblems: skeletonCheck.problems,
      skeletonDamage: skeletonCheck.damage,
      setElementCounts,
    };
  }

  /**
   * Reads only the objects of `scope` (a verify after an apply), every request a job of its own
   * spread over the reader sockets, so an endpoint change's verify waits about one round trip:
   * each chain by a get (a chain-filtered rule dump of a missing chain answers nothing, so
   * absence needs asking) then its rules' dump; each endpoint map by a dump of its elements
   * (ENOENT: absent); other per-group sets (affinity) by a get; each skeleton element by a get of
   * its key (ENOENT: absent). Set shapes come from their names (ours), not from a get.
   */
  private async readScoped(t: TableRef, scope: NftReadScope): Promise<NftReadBack | undefined> {
    const chains = new Map<string, string>();
    const sets = new Set<string>();
    const elements = new Map<string, Map<string, string>>();
    const absent = (e: unknown) => e instanceof NetlinkError && e.code === 'ENOENT';
    const dumpElems = async (conn: NetlinkConnection, set: string): Promise<DumpedElement[]> =>
      (
        await conn.request({
          type: nftType(NFT_MSG.GETSETELEM),
          payload: dumpRequest(t, set),
          dump: true,
          operation: `dump elements of ${set}`,
        })
      ).flatMap((m) => decodeSetElems(m.payload).elements);
    let head: { handle: bigint } | undefined;
    const jobs: ((conn: NetlinkConnection) => Promise<void>)[] = [
      async () => {
        head = await this.getTable(t);
      },
    ];
    for (const chain of scope.chains) {
      jobs.push(async (conn) => {
        try {
          await conn.request({
            type: nftType(NFT_MSG.GETCHAIN),
            payload: getChainRequest(t, chain),
            operation: `get chain ${chain}`,
          });
        } catch (e) {
          if (absent(e)) return;
          throw e;
        }
        const rules = (
          await conn.request({
            type: nftType(NFT_MSG.GETRULE),
            payload: dumpRequest(t, chain),
            dump: true,
            operation: `dump rules of chain ${chain}`,
          })
        ).map((m) => scanRule(m.payload));
        const anonymous = new Map<string, DumpedElement[]>();
        for (const set of new Set(rules.flatMap((r) => r.verdictMaps))) anonymous.set(set, await dumpElems(conn, set));
        chains.set(
          chain,
          summarizeTokens(
            rules.length,
            rules.flatMap((r) => ruleTokens(r, anonymous)),
          ),
        );
      });
    }
    for (const name of scope.sets) {
      jobs.push(async (conn) => {
        try {
          if (isLearnedSet(name)) {
            await conn.request({
              type: nftType(NFT_MSG.GETSET),
              payload: dumpRequest(t, name),
              operation: `get set ${name}`,
            });
          } else {
            elements.set(name, elementsText(setShape(name), await dumpElems(conn, name)));
          }
          sets.add(name);
        } catch (e) {
          if (!absent(e)) throw e;
        }
      });
    }
    for (const { set, key } of scope.elements) {
      jobs.push(async (conn) => {
        let found = elements.get(set);
        if (!found) elements.set(set, (found = new Map()));
        try {
          const msgs = await conn.request({
            type: nftType(NFT_MSG.GETSETELEM),
            payload: getSetElemRequest(t, set, [compileElement(key, undefined)[0]!.key]),
            operation: `get element ${key} of ${set}`,
          });
          const got = elementsText(
            setShape(set),
            msgs.flatMap((m) => decodeSetElems(m.payload).elements),
          );
          for (const [k, v] of got) found.set(k, v);
        } catch (e) {
          if (!absent(e)) throw e;
        }
      });
    }
    let next = 0;
    await Promise.all(
      this.readerConnections(jobs.length).map(async (conn) => {
        while (next < jobs.length) await jobs[next++]!(conn);
      }),
    );
    if (!head) return undefined;
    return {
      tableHandle: Number(head.handle),
      inventory: { chains, sets, elements },
      skeletonProblems: [],
      skeletonDamage: { chains: [], sets: [] },
      setElementCounts: new Map(),
      scoped: true,
    };
  }

  close(): void {
    this.conn.close();
    for (const c of this.readers) c.close();
    this.listener?.stop();
    this.dumpThread?.close();
  }

  /** Runs `jobs` over the reader sockets, one dump at a time on each; once `signal` fires, takes no more. */
  private async dumpOnReaders(jobs: readonly DumpJob[], signal?: AbortSignal): Promise<void> {
    let next = 0;
    await Promise.all(
      this.readerConnections().map(async (conn) => {
        while (next < jobs.length && !signal?.aborted) {
          const job = jobs[next++]!;
          try {
            job.take(await conn.request(job.request));
          } catch (e) {
            // A set deleted since the set dump by someone else's commit: read as absent (a chain
            // deleted meanwhile dumps as empty). The generation check around a read-back tells
            // the caller such a read was not consistent.
            if (!(e instanceof NetlinkError && e.code === 'ENOENT')) throw e;
          }
        }
      }),
    );
  }

  private readers: NetlinkConnection[] = [];
  /** Datagrams and bytes received on all sockets (tests check dump piece sizes). */
  readonly received = { datagrams: 0, bytes: 0 };

  /** A socket of this runner (nft-socket.ts), its datagrams counted in `received`. */
  private connection(recvBufferSize: number, sendBufferSize: number, large = true): NetlinkConnection {
    return nfnetlinkConnection(recvBufferSize, sendBufferSize, large, (msg) => {
      this.received.datagrams++;
      this.received.bytes += msg.length;
    });
  }

  /** The main socket plus a few more for parallel dumps (at most `jobs` in all), opened on first use. */
  private readerConnections(jobs = READER_SOCKETS): NetlinkConnection[] {
    const want = Math.min(READER_SOCKETS, Math.max(1, jobs)) - 1;
    while (this.readers.length < want) {
      this.readers.push(this.connection(4 * 1024 * 1024, 1024 * 1024, false));
    }
    return [this.conn, ...this.readers.slice(0, want)];
  }

  private async getTable(t: TableRef): Promise<{ handle: bigint } | undefined> {
    try {
      const msgs = await this.conn.request({
        type: nftType(NFT_MSG.GETTABLE),
        payload: dumpRequest(t),
        operation: `get table ${t.table}`,
      });
      return msgs[0] ? decodeTable(msgs[0].payload) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }
}

const SKELETON_CHAIN_NAMES: ReadonlySet<string> = new Set(SKELETON_CHAINS.map((c) => c.name));
const SKELETON_SET_NAMES: ReadonlySet<string> = new Set([...SKELETON_MAPS, ...SKELETON_SETS].map((s) => s.name));

/**
 * What a notification of our table means for a resync that reads back only what changed: a
 * per-group chain or set to re-read whole; elements of a skeleton set (one per service or
 * endpoint address: tens of thousands) to re-read one by one, keyed as the read-back writes
 * keys. Doubt — the resync reads the whole table — for the table itself, skeleton chains and
 * skeleton sets created or deleted (their damage is checked by the whole read's skeleton
 * check), any chain created, updated or renamed (NEWCHAIN: a rename names only the new chain),
 * anonymous sets (`__set%d`, `__map%d`: the notification does not say which rule's), and
 * anything this reader does not interpret.
 */
function classifyChange(n: Exclude<NftNotification, { kind: 'gen' }>): NftChangeEntry {
  switch (n.kind) {
    case 'chain':
      // A NEWCHAIN may be a rename, whose notification names only the new chain: the old name
      // (one of ours, gone) would go unread. Our own chain creations are at or before the known
      // generation and never reach a resync's range, so a foreign NEWCHAIN is rare: read whole.
      return n.newChain || SKELETON_CHAIN_NAMES.has(n.name) ? 'doubt' : { chain: n.name };
    case 'set':
      return SKELETON_SET_NAMES.has(n.name) || n.name.startsWith('__') ? 'doubt' : { set: n.name };
    case 'elements':
      if (n.name.startsWith('__')) return 'doubt';
      if (!SKELETON_SET_NAMES.has(n.name)) return { set: n.name };
      return { elements: { set: n.name, keys: [...elementsText(setShape(n.name), n.elements).keys()] } };
    default:
      return 'doubt';
  }
}

/** Set flags of one of our sets or maps, from its name (what elementsText needs to read its elements). */
function setShape(name: string): { flags: number } {
  if (isEndpointMap(name)) return { flags: NFT_SET_FLAGS.map | NFT_SET_FLAGS.interval };
  return { flags: SKELETON_MAPS.some((m) => m.name === name) ? NFT_SET_FLAGS.map : 0 };
}

function tableRef(family: string, table: string): TableRef {
  const f = NFPROTO[family as keyof typeof NFPROTO];
  if (f === undefined) throw new Error(`nftables family ${family} is not supported over netlink`);
  return { family: f, table };
}

const tableOf = (payload: Buffer): string => {
  // NFTA_*_TABLE is attribute 1 of every object message; read it without decoding the rest.
  const len = payload.readUInt16LE(4);
  return payload
    .subarray(8, 4 + len)
    .toString('utf8')
    .replace(/\0+$/, '');
};

const toRequest = (m: NftMessage): NetlinkRequest & { type: number } => ({
  type: m.type,
  flags: m.flags,
  payload: m.payload,
  operation: m.operation,
});

/** Jump/goto targets and DNAT destinations of one rule, as summarizeRules finds them in text. */
function ruleTokens(r: RuleDigestParts, elementsOf: ReadonlyMap<string, DumpedElement[]>): string[] {
  if (r.verdictMaps.length === 0) return r.tokens;
  const tokens = [...r.tokens];
  for (const set of r.verdictMaps) {
    for (const el of elementsOf.get(set) ?? []) {
      const v = el.data && 'verdict' in el.data ? el.data.verdict : undefined;
      if (v && (v.code === 'jump' || v.code === 'goto')) tokens.push(`->${v.chain}`);
    }
  }
  return tokens;
}

interface Compiled {
  messages: NftMessage[];
  staged: boolean[];
  /** `withNext[i]`: message i must share a batch with i + 1 (an anonymous set and its rule: batch ids). */
  withNext: boolean[];
}

/**
 * Typed ops → nf_tables messages, in order. `staged[i]` marks the messages that bring a table
 * to life (base chains with hooks and their rules): when a transaction is too large for one
 * batch, those go last, so a table loaded in several batches stays inert until complete.
 */
export function compileTransaction(tx: NftTransaction, maxGluedBytes = MAX_GLUED_BYTES): Compiled {
  const c = new OpCompiler(tx.family, tx.table, maxGluedBytes);
  for (const op of tx.ops) c.op(op);
  return c.finish();
}

/**
 * A whole-table load of `objects` compiled as it is emitted (emitFullLoad, planFullLoad's
 * order), without queuing its operations first: the same messages as compileTransaction of
 * planFullLoad(objects) (a unit test compares them byte for byte). At 10k services the queue
 * is ~250k operation objects that all lived until the load was compiled; here each dies young.
 * Names are checked as the queue checks them; keys and values by the compile grammar.
 */
export function compileFullLoad(
  family: string,
  table: string,
  objects: NftObjects,
  maxGluedBytes = MAX_GLUED_BYTES,
): Compiled {
  const c = new OpCompiler(family, table, maxGluedBytes);
  emitFullLoad(objects, (verb, object) => {
    if (object.kind === 'chain' || object.kind === 'set' || object.kind === 'map') {
      const why = invalidObjectName(object.name);
      if (why) throw new Error(`nft transaction on ${family} ${table}: ${why}`);
    }
    c.op({ verb, object });
  });
  return c.finish();
}

/** Compiles ops one by one into messages (see compileTransaction). */
class OpCompiler {
  private readonly t: TableRef;
  private readonly messages: NftMessage[] = [];
  private readonly staged: boolean[] = [];
  private readonly withNext: boolean[] = [];
  private readonly hooked = new Set<string>();
  private nextId = 1;
  private pendingElems:
    | { verb: 'new' | 'del'; map: string; items: NftElement[]; bytes: number; first: NftOp; count: number }
    | undefined;
  // The set declared by the last message and the bytes of the messages glued to it since:
  // elements added right after their set's declaration address it by its batch id alone.
  private justDeclared: { name: string; id: number; bytes: number } | undefined;

  constructor(
    private readonly family: string,
    private readonly table: string,
    private readonly maxGluedBytes: number,
  ) {
    this.t = tableRef(family, table);
  }

  private push(m: NftMessage, stage = false, glued = false): void {
    this.messages.push(m);
    this.staged.push(stage);
    this.withNext.push(glued);
  }

  private flushElems(): void {
    const p = this.pendingElems;
    if (!p) return;
    const first = describeOp(this.family, this.table, p.first);
    const op = p.count === 1 ? first : `${first} (+${p.count - 1} more)`;
    // nf_tables finds a set by name by walking every set of the table (strcmp each): at 10k
    // endpoint maps, one walk per element message was a third of a load's kernel time. Without
    // a name it looks the set up by batch id among this batch's new sets, newest first. Only
    // valid in the batch that declares the set, so the two are glued (splitBatches keeps them
    // together); a run too large to glue goes by name.
    const d = this.justDeclared;
    if (d && p.verb === 'new' && p.map === d.name && d.bytes + p.bytes <= this.maxGluedBytes) {
      const m = setElems('new', this.t, p.map, p.items, op, { setId: d.id, byIdOnly: true });
      this.withNext[this.withNext.length - 1] = true;
      this.push(m);
      d.bytes += m.payload.length;
    } else {
      this.push(setElems(p.verb, this.t, p.map, p.items, op));
      this.justDeclared = undefined;
    }
    this.pendingElems = undefined;
  }

  op(op: NftOp): void {
    const o = op.object;
    const t = this.t;
    if (o.kind === 'element') {
      const verb = op.verb === 'delete' ? 'del' : 'new';
      const items: NftElement[] = compileElement(o.key, o.value);
      const size = items.length * (items[0]!.key.length + 24 + (o.value?.length ?? 0) + 24);
      let p = this.pendingElems;
      if (!p || p.verb !== verb || p.map !== o.map || p.bytes + size > MAX_ELEMENTS_BYTES) {
        this.flushElems();
        p = this.pendingElems = { verb, map: o.map, items: [], bytes: 0, first: op, count: 0 };
      }
      for (const it of items) p.items.push(it);
      p.bytes += size;
      p.count++;
      return;
    }
    this.flushElems();
    const text = describeOp(this.family, this.table, op);
    this.justDeclared = undefined;
    const excl = op.verb === 'create';
    switch (o.kind) {
      case 'table':
        if (op.verb === 'delete') this.push(delTable(t, text));
        else if (op.verb === 'flush') this.push(flushRules(t, undefined, text));
        else this.push(newTable(t, text, excl));
        return;
      case 'chain':
        if (op.verb === 'delete') this.push(delChain(t, o.name, text));
        else if (op.verb === 'flush') this.push(flushRules(t, o.name, text));
        else {
          if (o.hook) this.hooked.add(o.name);
          this.push(newChain(t, o.name, o.hook ? compileHook(o.hook) : undefined, text, excl), o.hook !== undefined);
        }
        return;
      case 'rule': {
        const stage = this.hooked.has(o.chain);
        const alloc = (a: AnonymousSet) => {
          const id = this.nextId++;
          const name = `${a.prefix}%d`;
          this.push(newSet(t, { ...a.spec, name, id }, `${text} (anonymous set)`), stage, true);
          this.push(
            setElems('new', t, name, a.elements, `${text} (anonymous set elements)`, { setId: id }),
            stage,
            true,
          );
          return { name, id };
        };
        this.push(newRule(t, o.chain, compileRule(o.rule, alloc), text), stage);
        return;
      }
      case 'set':
      case 'map':
        if (op.verb === 'delete') this.push(delSet(t, o.name, text));
        else if (op.verb === 'flush') this.push(setElems('del', t, o.name, [], text));
        else {
          const id = this.nextId++;
          const m = newSet(
            t,
            { ...(o.kind === 'set' ? compileSetDecl(o.decl) : compileMapType(o.decl)), name: o.name, id },
            text,
            excl,
          );
          this.push(m);
          this.justDeclared = { name: o.name, id, bytes: m.payload.length };
        }
        return;
    }
  }

  finish(): Compiled {
    this.flushElems();
    return { messages: this.messages, staged: this.staged, withNext: this.withNext };
  }
}

/**
 * A datagram's bytes for a message in a batch: its header (16) and payload padded to 4, rounded
 * up. Every batch's sum stays at most the runner's maxBatchBytes, 4 KiB under the send buffer,
 * which also holds BATCH_BEGIN and BATCH_END.
 */
const batchedSize = (m: NftMessage) => m.payload.length + 20;

/**
 * Glue cap for batches of at most `maxBatchBytes`: a quarter of a batch (at the kernel's default
 * wmem_max, 2 × 212,992 bytes of send buffer, ~100 KiB: a map of ~1,700 endpoints glued, its
 * further elements by name), so a glued run is small against the batch it must fit in whole.
 */
export function gluedBytesFor(maxBatchBytes: number): number {
  return Math.max(0, Math.min(MAX_GLUED_BYTES, Math.floor(maxBatchBytes / 4)));
}

/**
 * One batch when it fits; otherwise in order, with the staged (hooking) messages last in a batch
 * of their own. Messages that must share a batch (withNext) go as one unit, cut before when the
 * unit does not fit what is left of the batch: no batch is over `maxBytes` (a cut inside a glued
 * run made one larger than the socket's send buffer, refused with EMSGSIZE, whenever such a
 * run straddled the limit: a service of a few hundred endpoints at the default wmem_max). A
 * unit larger than a whole batch is refused here, naming it, before anything is sent.
 */
export function splitBatches(c: Compiled, maxBytes: number): NftMessage[][] {
  if (c.messages.length === 0) return [];
  const total = c.messages.reduce((a, m) => a + batchedSize(m), 0);
  if (total <= maxBytes) return [c.messages];
  // units of messages that must share a batch (each glued to the next), unstaged ones first
  const units: { messages: NftMessage[]; bytes: number; staged: boolean }[] = [];
  for (const staged of [false, true]) {
    let unit: NftMessage[] = [];
    let unitBytes = 0;
    c.messages.forEach((m, i) => {
      if (c.staged[i] !== staged) return;
      unit.push(m);
      unitBytes += batchedSize(m);
      if (c.withNext[i] === true && c.staged[i + 1] === staged) return;
      units.push({ messages: unit, bytes: unitBytes, staged });
      unit = [];
      unitBytes = 0;
    });
  }
  const batches: NftMessage[][] = [];
  let cur: NftMessage[] = [];
  let bytes = 0;
  let prevStaged = false;
  for (const unit of units) {
    if (unit.bytes > maxBytes) {
      const more =
        unit.messages.length > 1 ? ` and the ${unit.messages.length - 1} message(s) that must share its batch` : '';
      throw new Error(
        `nftables batch: ${unit.messages[0]?.operation}${more} take ${unit.bytes} bytes, more than one batch can carry (${maxBytes}: the socket send buffer, 2 × net.core.wmem_max)`,
      );
    }
    if (cur.length > 0 && (bytes + unit.bytes > maxBytes || unit.staged !== prevStaged)) {
      batches.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(...unit.messages);
    bytes += unit.bytes;
    prevStaged = unit.staged;
  }
  if (cur.length > 0) batches.push(cur);
  return batches;
}
