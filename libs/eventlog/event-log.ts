/**
 * EventLog, the class every caller holds: opening the file, the append path (each chained row
 * written in one transaction), checkpoints, and the row copying the replicated log uses. Its
 * reads are log-queries.ts, how a write runs is log-writes.ts, whether the file can be trusted is
 * log-file-watch.ts: split out so this file stays the one home of what the log stores.
 */
import { acquireWriterLock, type WriterLock } from './writer-lock.ts';
import type Database from 'better-sqlite3';
import {
  canonicalJson,
  contentHash,
  deepFreeze,
  LATEST_READING_REVISION,
  runSteps,
  type AckOrNack,
  type ConfigRevision,
  type DataDelta,
  type KnownTexts,
  type LoggedWatchEvent,
  type Operation,
  type ProxyConfig,
  type ReadingRevision,
  type WatchEvent,
} from '../model/index.ts';
import { EventLogError } from './event-log-error.ts';
import { damageOf, watchStatements } from './file-health.ts';
import { LogFileWatch } from './log-file-watch.ts';
import { LogWrites, type SlowWrites } from './log-writes.ts';
import {
  configRevision,
  countVersions,
  latestOperationWith,
  liveObjectEvents,
  liveObjectIdentities,
  type LoggedIdentity,
  readEvents,
  readOperations,
  readVersions,
  versionAt,
  versionAtUncertain,
  versionDelta,
  VERSION_HEADER_COLUMNS,
  type OperationRecord,
} from './log-queries.ts';
import { openDatabase, type SchemaStatus } from './open-database.ts';
import { CHAINS, chainHash, linkFields, type ChainName } from './row-chain.ts';
import { CLOCK_STEP_BOUND_MS, hasClockStep, nextStamp, placeInTime, StepSpan } from './stamp-order.ts';
import { readingRevisionColumn, rowToVersion, type VersionRecord, type VersionRow } from './version-record.ts';
import { prepareEventRow, rowToEvent, type EventRow, type PreparedEventRow } from './event-row.ts';
import {
  checkpointSteps,
  dropUnownedPieces,
  listCheckpoints,
  storeCheckpointSteps,
  type Checkpoint,
  type LogWrite,
} from './checkpoints.ts';
import { SqliteResumeStore } from './sqlite-resume-store.ts';
import { registerDatabase } from './database-handle.ts';
import { batchSlices, wholeLogSlices, type RowSlice } from './log-row-slices.ts';
import {
  exportRows,
  exportRowsSteps,
  holdsPosition,
  importRows,
  isAhead,
  stageBatchPiecesSteps,
  positionOf,
  anchorPositionOf,
  replaceResumePoints,
  truncateRows,
  RecentRows,
  type LogPosition,
  type RawRow,
  type RowBatch,
} from './log-rows.ts';
import {
  listTruncations,
  readMark,
  recordTruncation,
  writeMark,
  type ReplicationMark,
  type TruncationRecord,
} from './replication-mark.ts';
import type { ClusterState, ObjectRejection } from '../planner/index.ts';

export interface EventLogOptions {
  readonly file: string;
  /** Run pending migrations (default true); false: the file must exist with a current schema. */
  readonly migrate?: boolean;
  /** Open read-only (replay, audit, db status|verify|backup): the file is never written (OpenDatabaseOptions.readOnly). */
  readonly readOnly?: boolean;
  /** Clock for received-at/created-at stamps (tests pin it). */
  readonly now?: () => Date;
  /**
   * Told when a version's or ACK's stamp is not clamped up to the previous row's because that
   * one is ahead of this clock by more than CLOCK_STEP_BOUND_MS (a clock fault, see
   * stamp-order.ts); default: one line on stderr.
   */
  readonly onClockStep?: (message: string) => void;
  /** See OpenDatabaseOptions.sync: 'full' (default) is durable per commit. */
  readonly sync?: 'full' | 'normal';
  /**
   * Take the file's writer lock (writer-lock.ts) for as long as the log is open, naming this
   * purpose to a process refused it: the planner, the one writer of its log. Refused with an
   * EventLogError 'LOCKED' while another process holds it.
   */
  readonly writer?: string;
  /**
   * Told once when writes start failing for lack of disk space (SQLITE_FULL) or of file
   * descriptors (EMFILE), and once when they work again; default: one line on stderr.
   */
  readonly say?: (line: string) => void;
  /** A commit taking longer than this (ms) counts as a slow write (slowWrites(); default 1000). */
  readonly slowWriteMs?: number;
}

export type { SlowWrites } from './log-writes.ts';

export interface RecordVersionInput {
  /** ClusterState.hash() after the batch (for a pin: the hash of the version it copies). */
  readonly hash: string;
  readonly reason: string;
  /** Last event seq this version's content includes; must already be in the log. */
  readonly seqTo: number;
  /** Pins and rollbacks: the version whose content this one repeats. */
  readonly contentOf?: number;
  /** The delta against the parent version, kept so any version can be republished after a restart. */
  readonly delta?: DataDelta;
  /** Canonical texts already made for objects of `delta` (its entries, when just hashed): spliced in, not redone. */
  readonly deltaTexts?: KnownTexts;
  /** The reading revision the content was read with (default: the latest; libs/model/reading-revision.ts). */
  readonly readingRevision?: ReadingRevision;
}

export type { OperationRecord } from './log-queries.ts';

const HEX64 = /^[0-9a-f]{64}$/;
/** The events columns an events row's chain link covers (all but row_hash, which follows them). */
const EVENT_LINK_COLUMNS = CHAINS.events.columns.length;
/** SQLite's default automatic checkpoint threshold (pages), and the one while a bulk load holds it. */
const DEFAULT_WAL_PAGES = 1000;
const HELD_WAL_PAGES = 25_000;

/**
 * The SQLite event log: watch events, data versions, config revisions, acks and operations, each
 * table hash-chained; checkpoints and informer resume points beside them. Writes are synchronous
 * better-sqlite3 transactions with synchronous=FULL, so when a call returns its rows are on disk:
 * the caller may then publish anything derived from them. A log has one writer process.
 */
export class EventLog {
  private readonly now: () => Date;
  private onClockStep = (message: string) => console.warn(message);
  private readonly stmt: ReturnType<EventLog['prepare']>;
  private resume: SqliteResumeStore | undefined;
  /**
   * The events rows appended last, as stored, for the replicated log's next export (its flush
   * every 200 ms and before each publish) instead of reading them back: ~10 MB at most.
   */
  private readonly recentEvents = new RecentRows(20_000);
  /**
   * Config revisions as read, frozen (they are shared): a row never changes once written, and only
   * truncateTo drops rows (it clears this). A rollout step asks for its revision per wave node
   * per ACK; a query and a JSON parse each made a version's ACKs from 2,000 nodes in a 100% wave
   * take ~42 s of the planner's thread (bench/planner/ack-intake-bench.ts).
   */
  private readonly configRevisions = new Map<number, ConfigRevision>();

  private constructor(
    readonly file: string,
    private readonly db: Database.Database,
    readonly schema: SchemaStatus,
    now?: () => Date,
  ) {
    registerDatabase(this, db);
    // Damage is latched and named (with the file) wherever a statement meets it; other errors
    // pass as they are, for the write or the caller around them to name in its own context.
    this.fileWatch = new LogFileWatch(file, db);
    const unwatched = watchStatements(db, (e) =>
      damageOf(e) === undefined ? e : this.fileWatch.failed(e, `event log ${file}`),
    );
    this.now = now ?? (() => new Date());
    this.writes = new LogWrites(file, db, this.fileWatch, this.now);
    // rows read or written inside a transaction that rolled back were never in the file
    this.writes.afterRollback = () => {
      this.configRevisions.clear();
      this.recentEvents.clear();
    };
    this.stmt = this.prepare(unwatched);
  }

  static async open(opts: EventLogOptions): Promise<EventLog> {
    // Before the database is opened: a second writer must not even run the migrations.
    const lock = opts.writer === undefined ? undefined : acquireWriterLock(opts.file, opts.writer);
    try {
      const { db, schema, migrated, headerFd } = await openDatabase({
        file: opts.file,
        migrate: opts.migrate,
        sync: opts.sync,
        readOnly: opts.readOnly,
      });
      const log = new EventLog(opts.file, db, schema, opts.now);
      if (opts.onClockStep) log.onClockStep = opts.onClockStep;
      if (opts.say) log.writes.say = opts.say;
      if (opts.slowWriteMs !== undefined) log.writes.slowWriteMs = opts.slowWriteMs;
      log.fileWatch.watch({ sidecars: !opts.readOnly, headerFd });
      log.migrated = migrated;
      log.writerLock = lock;
      // pieces a checkpoint store staged before a crash (checkpoints.ts stagePiecesSteps): the
      // writer removes them (no other process stages; a non-writer open may run beside a planner's store)
      if (lock && !opts.readOnly)
        log.writes.run('removal of checkpoint pieces no checkpoint owns', () => dropUnownedPieces(db));
      return log;
    } catch (e) {
      lock?.release();
      throw e;
    }
  }

  private writerLock: WriterLock | undefined;
  /** Migrations this open applied to a file that had a schema (an upgrade); empty otherwise. */
  migrated: readonly string[] = [];
  /** Whether the file can still be trusted (deleted, replaced, damaged: the unusable latch). */
  private readonly fileWatch: LogFileWatch;
  /** How every write runs (refused once unusable, trouble said, slow commits counted). */
  private readonly writes: LogWrites;

  /**
   * Why the log file cannot be trusted now, one line, or undefined. Unusable (for good: writes are
   * refused, code UNUSABLE, until a restart opens the file again): a statement met a damaged file
   * (SQLITE_CORRUPT, NOTADB, a short read: probe8 D1), its header says it was truncated or
   * overwritten, or its -wal or -shm was deleted under this process (probe8 D2; the WAL's committed
   * rows are first copied into the file by a rescue checkpoint). Deleted or replaced (while the
   * path does not name the file opened; an operator's `rm`, a restore copied over it): the log
   * keeps writing to an inode no one will open again, and nothing else would say so until a restart.
   */
  fileProblem(): string | undefined {
    return this.fileWatch.problem();
  }

  /** The latched reason alone (see fileProblem): the log refuses writes for good. */
  get unusable(): string | undefined {
    return this.fileWatch.unusable;
  }

  /** Commits slower than slowWriteMs so far (EventLogOptions.slowWriteMs). */
  slowWrites(): SlowWrites {
    return this.writes.slowWrites();
  }

  /** `unwatched`: for the one statement run per row, only ever inside write(), which watches for damage itself. */
  private prepare(unwatched: Database.Database['prepare']) {
    const d = this.db;
    return {
      head: d.prepare('SELECT head_id AS id, head_hash AS hash FROM chain_heads WHERE chain = ?'),
      setHead: d.prepare('UPDATE chain_heads SET head_id = ?, head_hash = ? WHERE chain = ?'),
      insertEvent:
        unwatched(`INSERT INTO events (seq, received_at, kind, type, origin, namespace, name, uid, resource_version, service, object, row_hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      insertVersion:
        d.prepare(`INSERT INTO versions (version, parent, hash, reason, created_at, seq_from, seq_to, content_of, delta, reading_revision, row_hash)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
      // the header, not the delta: a version of 100 000 endpoints has ~12 MB of it, read (and
      // decoded into a string) ~60 ms each time, three times per version recorded (probe10 H9)
      version: d.prepare(`SELECT ${VERSION_HEADER_COLUMNS} FROM versions WHERE version = ?`),
      insertConfig: d.prepare(
        'INSERT INTO config_revisions (revision, hash, reason, created_at, config, row_hash) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertAck: d.prepare(
        'INSERT INTO acks (id, type, node, version, config_revision, at, body, received_at, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      lastAckReceivedAt: d.prepare('SELECT received_at AS r FROM acks ORDER BY id DESC LIMIT 1'),
      // one probe of acks_by_node (node, at, id): the node's rows of that instant, then the body
      sameAck: d.prepare('SELECT id FROM acks WHERE node = ? AND at = ? AND body = ? ORDER BY id LIMIT 1'),
      insertOp: d.prepare(
        'INSERT INTO operations (id, kind, actor, reason, params, version, at, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
    };
  }

  private head(chain: ChainName): { id: number; hash: string } {
    return this.stmt.head.get(chain) as { id: number; hash: string };
  }

  /** Inserts one chained row (inside the caller's transaction) and moves the chain head. */
  private appendChained(chain: ChainName, insert: Database.Statement, values: (string | number | null)[]): number {
    const h = this.head(chain);
    const id = h.id + 1;
    const row = [id, ...values];
    const hash = chainHash(h.hash, linkFields(chain, row));
    insert.run(...row, hash);
    this.stmt.setHead.run(id, hash, chain);
    return id;
  }

  /** Says that a row keeps this clock's stamp, `prev` being too far ahead to clamp to (stamp-order.ts). */
  private clockStep(what: string, prev: string, now: string, aheadMs: number): void {
    this.onClockStep(
      `event log: clock step: ${what} is stamped ${now}, ${Math.round(aheadMs / 1000)} s before the previous row's ${prev} (more than the ${CLOCK_STEP_BOUND_MS / 1000} s it clamps to): one of the two clocks was wrong; audits place such rows by their order (stamp-order.ts)`,
    );
  }

  /**
   * Runs `fn`'s writes (recordVersion, recordOperation, ...) as one transaction: when it returns,
   * all of them are on disk; when it throws or the process dies inside it, none is.
   */
  atomically<T>(fn: () => T): T {
    return this.writes.run('transaction', fn);
  }

  /**
   * For a bulk load (a planner's initial list: ~25 MB of WAL at 10k services): SQLite's automatic
   * checkpoint would copy the WAL into the database file every ~4 MB (1 000 pages), rewriting the
   * same index pages each time and fsyncing the file; held, the pages are copied once, by the
   * checkpoint the returned release runs. Durability does not depend on it: a commit is durable
   * once its WAL frames are fsynced (synchronous=FULL), and opening the file replays the WAL.
   * The WAL stays bounded (an automatic checkpoint still runs past ~100 MB). Release is idempotent.
   */
  holdWalCheckpoints(): () => void {
    this.db.pragma(`wal_autocheckpoint = ${HELD_WAL_PAGES}`);
    let held = true;
    return () => {
      if (!held || !this.db.open) return;
      held = false;
      this.db.pragma(`wal_autocheckpoint = ${DEFAULT_WAL_PAGES}`);
      this.db.pragma('wal_checkpoint(PASSIVE)');
    };
  }

  /** First event seq still in the log (0 when empty; after compaction, the first kept one). */
  oldestSeq(): number {
    return (this.db.prepare('SELECT min(seq) AS s FROM events').get() as { s: number | null }).s ?? 0;
  }

  /** Last event seq in the log (0 when empty). */
  lastSeq(): number {
    return this.head('events').id;
  }

  /**
   * Appends a batch of watch events in one transaction (group commit) and returns their seqs.
   * The whole batch is validated first: a bad event rejects the batch and writes nothing.
   */
  appendEvents(events: readonly WatchEvent[]): number[] {
    // Checked and serialised before the transaction (a throwing toJSON writes nothing).
    return this.appendPrepared(events.map(prepareEventRow));
  }

  /**
   * appendEvents for events already checked and serialised (prepareEventRow): the same rows,
   * chain links and durability. Each row is made once, hashed, bound as one array and kept as
   * stored for the replicated log's next export.
   *
   * `resumePoints: false` leaves the informer's pending resume-point saves for a later append: for
   * a caller appending a queue in several transactions, where a save may cover events still queued
   * behind this batch; only the transaction that takes the queue's last event may carry them (see
   * SqliteResumeStore: a resume point is never durable before the events it covers).
   */
  appendPrepared(events: readonly PreparedEventRow[], opts: { readonly resumePoints?: boolean } = {}): number[] {
    if (events.length === 0) return [];
    const resume = opts.resumePoints === false ? undefined : this.resume;
    const receivedAt = this.now().toISOString();
    const stored: (string | number)[][] = [];
    const out = this.writes.run(`append of ${events.length} events`, () => {
      const h = this.head('events');
      let prev = h.hash;
      let seq = h.id;
      const seqs: number[] = [];
      for (const e of events) {
        // Made at its final length, row_hash last (set once hashed): a row grown by a push keeps
        // a backing store of 32 slots, and up to 20 000 of them stay in recentEvents.
        const row: (string | number)[] = [
          ++seq,
          receivedAt,
          e.kind,
          e.type,
          e.origin,
          e.namespace,
          e.name,
          e.uid,
          e.resourceVersion,
          e.service,
          e.object,
          '',
        ];
        prev = chainHash(prev, row, EVENT_LINK_COLUMNS);
        row[EVENT_LINK_COLUMNS] = prev;
        this.stmt.insertEvent.run(row);
        stored.push(row);
        seqs.push(seq);
      }
      this.stmt.setHead.run(seq, prev, 'events');
      resume?.writePending();
      return seqs;
    });
    resume?.committed();
    this.recentEvents.add(stored);
    return out;
  }

  /** Events with fromSeq ≤ seq ≤ toSeq, in order. */
  events(opts: { fromSeq?: number; toSeq?: number; limit?: number } = {}): LoggedWatchEvent[] {
    return readEvents(this.db, opts);
  }

  /**
   * The last event of every object whose last event is not a DELETED, in seq order: the objects the
   * log holds, raw as logged, for a source to diff its first scan or LIST against (owner: sources).
   * Uses the events_by_object index; objects whose events were all compacted away are not included.
   */
  liveObjectEvents(): LoggedWatchEvent[] {
    return liveObjectEvents(this.db);
  }

  /** liveObjectEvents' objects, each its identity only (log-queries.ts liveObjectIdentities). */
  liveObjectIdentities(): LoggedIdentity[] {
    return liveObjectIdentities(this.db);
  }

  /** Records the next data version (number = last + 1, parent = last). */
  recordVersion(input: RecordVersionInput): VersionRecord {
    if (!HEX64.test(input.hash))
      throw new EventLogError(
        'INVALID',
        `recordVersion: hash must be 64 hex digits, got ${JSON.stringify(input.hash)}`,
      );
    if (!Number.isInteger(input.seqTo) || input.seqTo < 0)
      throw new EventLogError('INVALID', `recordVersion: bad seqTo ${input.seqTo}`);
    const now = this.now().toISOString();
    return this.writes.run('recordVersion', () => {
      const last = this.latestVersion();
      // Monotonic along the chain: a planner whose clock is behind the previous writer's (a
      // failover, an NTP step back) must not stamp a version before its parent, or `replay --at`
      // would name it current at a time before it existed (review 2, L3). But only by up to a
      // bound: a parent stamped by a clock far ahead is a clock fault, not to be the stamp of
      // every later version (review4 G6; versionAt places such rows, stamp-order.ts).
      const { stamp: createdAt, aheadMs } = nextStamp(last?.createdAt, now);
      if (aheadMs !== undefined) this.clockStep(`version ${last!.version + 1}`, last!.createdAt, now, aheadMs);
      const lastSeq = this.lastSeq();
      if (input.seqTo > lastSeq)
        throw new EventLogError(
          'INVALID',
          `recordVersion: covers seq ${input.seqTo} but the log holds events only up to ${lastSeq}`,
        );
      if (last && input.seqTo < last.seqTo)
        throw new EventLogError(
          'INVALID',
          `recordVersion: seqTo ${input.seqTo} is before version ${last.version}'s ${last.seqTo}`,
        );
      if (input.contentOf !== undefined) {
        const src = this.version(input.contentOf);
        if (!src)
          throw new EventLogError('NOT_FOUND', `recordVersion: content_of version ${input.contentOf} does not exist`);
        if (src.hash !== input.hash)
          throw new EventLogError(
            'INVALID',
            `recordVersion: hash ${input.hash} differs from version ${src.version}'s ${src.hash}`,
          );
      }
      const parent = last?.version ?? 0;
      const seqFrom = (last?.seqTo ?? 0) + 1;
      const delta = input.delta ? canonicalJson(input.delta, input.deltaTexts) : null;
      const version = this.appendChained('versions', this.stmt.insertVersion, [
        parent,
        input.hash,
        input.reason,
        createdAt,
        seqFrom,
        input.seqTo,
        input.contentOf ?? null,
        delta,
        // revision 1 as NULL: such a row is the one an earlier release wrote (row-chain.ts optional tail)
        readingRevisionColumn(input.readingRevision ?? LATEST_READING_REVISION),
      ]);
      return this.version(version)!;
    });
  }

  version(n: number): VersionRecord | undefined {
    const row = this.stmt.version.get(n) as VersionRow | undefined;
    return row && rowToVersion(row);
  }

  latestVersion(): VersionRecord | undefined {
    const n = this.head('versions').id;
    return n === 0 ? undefined : this.version(n);
  }

  /**
   * Version records in [from, to], oldest first; with `newest`, only the newest that many of them.
   * The columns listed, not the deltas (a history of 10^5 versions is read for its headers).
   */
  versions(opts: { from?: number; to?: number; newest?: number } = {}): VersionRecord[] {
    return readVersions(this.db, opts);
  }

  /** How many versions lie in [from, to]. */
  countVersions(opts: { from?: number; to?: number } = {}): number {
    return countVersions(this.db, opts);
  }

  /** The version current at `at` (ISO-8601 UTC); how it is found, with stamps that step back: log-queries.ts versionAt. */
  versionAt(at: string): VersionRecord | undefined {
    return versionAt(
      this.db,
      at,
      (n) => this.version(n),
      () => this.latestVersion(),
    );
  }

  /**
   * Why the version versionAt(`at`) finds may not be the one current then (probe12 L2), or
   * undefined: `at` lies where the versions' stamps step back past the bound (StepSpan).
   */
  versionAtUncertain(at: string): string | undefined {
    return versionAtUncertain(this.db, at);
  }

  /** The stored delta of version n against its parent (undefined when none was recorded). */
  versionDelta(n: number): DataDelta | undefined {
    return versionDelta(this.db, n);
  }

  recordConfigRevision(input: { config: ProxyConfig; reason: string }): ConfigRevision {
    const createdAt = this.now().toISOString();
    const hash = contentHash(input.config);
    const revision = this.writes.run('recordConfigRevision', () =>
      this.appendChained('config_revisions', this.stmt.insertConfig, [
        hash,
        input.reason,
        createdAt,
        canonicalJson(input.config),
      ]),
    );
    return { revision, config: input.config, hash, reason: input.reason, createdAt };
  }

  configRevision(n: number): ConfigRevision | undefined {
    const held = this.configRevisions.get(n);
    if (held) return held;
    const r = configRevision(this.db, n);
    if (r) this.configRevisions.set(n, deepFreeze(r));
    return r;
  }

  latestConfigRevision(): ConfigRevision | undefined {
    const n = this.head('config_revisions').id;
    return n === 0 ? undefined : this.configRevision(n);
  }

  /**
   * Records an ACK or NACK as received; returns its row id. The row keeps the node's `at` and adds
   * `received_at`, this planner's time, monotonic along the acks chain (never before the previous
   * row's, whichever planner wrote it, unless that one is ahead by more than CLOCK_STEP_BOUND_MS:
   * a clock fault, see stamp-order.ts): audits place reports in time on it, not on the node's
   * clock (review 2, R3).
   *
   * Idempotent: a report equal to one already recorded for the node (the same body, its `at` and
   * applier instance included: the node's own stamp of that report) is not a row again; the first
   * row's id is returned and its received_at stays. An applier sends its last report again after
   * every reconnect (probe14 P1); the planner's ReportLogGate drops such a repeat only in memory
   * and for a minute, so a reconnect later than that, or one to a restarted or new leader, wrote
   * it again, received then: `audit node` placed the node's ACK (or NACK) at the later time. A new
   * report of the same version (a new `at`: an ACK after a NACK, a NACK still failing a minute on)
   * is a row of its own.
   */
  recordAck(a: AckOrNack): number {
    if (a.type !== 'ACK' && a.type !== 'NACK')
      throw new EventLogError('INVALID', `recordAck: type must be ACK or NACK`);
    if (!a.node || !Number.isInteger(a.version))
      throw new EventLogError('INVALID', `recordAck: node and integer version required`);
    const now = this.now().toISOString();
    const body = canonicalJson(a);
    return this.writes.run('recordAck', () => {
      const same = this.stmt.sameAck.get(a.node, a.at, body) as { id: number } | undefined;
      if (same) return same.id;
      const prev = (this.stmt.lastAckReceivedAt.get() as { r: string | null } | undefined)?.r;
      const { stamp: receivedAt, aheadMs } = nextStamp(prev, now); // as recordVersion's created_at
      if (aheadMs !== undefined) this.clockStep(`the ${a.type} of ${a.node}`, prev!, now, aheadMs);
      return this.appendChained('acks', this.stmt.insertAck, [
        a.type,
        a.node,
        a.version,
        a.configRevision,
        a.at,
        body,
        receivedAt,
      ]);
    });
  }

  /** Records who did which rollout/rollback/pin and why; `version` is the version it made, if any. */
  recordOperation(op: Operation & { version?: number }): OperationRecord {
    if (!op.actor || !op.reason) throw new EventLogError('INVALID', `recordOperation: actor and reason are required`);
    const at = this.now().toISOString();
    const id = this.writes.run('recordOperation', () =>
      this.appendChained('operations', this.stmt.insertOp, [
        op.kind,
        op.actor,
        op.reason,
        canonicalJson(op.params),
        op.version ?? null,
        at,
      ]),
    );
    return { id, kind: op.kind, actor: op.actor, reason: op.reason, params: op.params, version: op.version, at };
  }

  /** Every operation, oldest first; with `newest`, only the newest that many. */
  operations(opts: { newest?: number } = {}): OperationRecord[] {
    return readOperations(this.db, opts);
  }

  /** The latest operation whose params carry `param` (even as null): the state it left, in O(1) reads from the end. */
  latestOperationWith(param: string): OperationRecord | undefined {
    return latestOperationWith(this.db, param);
  }

  /** The informer's resume points, stored in this log (saves ride on the next append; see SqliteResumeStore). */
  resumeStore(): SqliteResumeStore {
    return (this.resume ??= new SqliteResumeStore(this.db, this.now));
  }

  /**
   * Writes a full-state checkpoint. `state` must reflect exactly the events up to `seq` (default:
   * the last appended event), so replay can start from it instead of from the first event.
   */
  checkpoint(state: ClusterState, opts: { seq?: number; rejections?: Iterable<ObjectRejection> } = {}): Checkpoint {
    return runSteps(this.checkpointSteps(state, opts));
  }

  /**
   * checkpoint() with its objects serialised in steps (checkpoints.ts checkpointSteps), then stored
   * a piece a transaction and step (storeCheckpointSteps): a caller running the steps in slices
   * keeps its event loop turning while a large cluster is serialised and stored. `state` must not
   * change between the steps; `seq` is taken at the first step.
   */
  *checkpointSteps(
    state: ClusterState,
    opts: { seq?: number; rejections?: Iterable<ObjectRejection>; pieceChars?: number } = {},
  ): Generator<void, Checkpoint, void> {
    const seq = opts.seq ?? this.lastSeq();
    if (seq > this.lastSeq())
      throw new EventLogError('INVALID', `checkpoint: seq ${seq} is past the last event ${this.lastSeq()}`);
    const prepared = yield* checkpointSteps({
      state,
      rejections: opts.rejections ?? [],
      seq,
      version: this.head('versions').id,
      createdAt: this.now().toISOString(),
      ...(opts.pieceChars === undefined ? {} : { pieceChars: opts.pieceChars }),
    });
    return yield* storeCheckpointSteps(this.db, prepared, (what, fn) => this.writes.run(what, fn));
  }

  checkpoints(): Checkpoint[] {
    return listCheckpoints(this.db);
  }

  /** True when at least `every` events were appended since the last checkpoint (the planner's cue). */
  checkpointDue(every: number, readingRevision: ReadingRevision = LATEST_READING_REVISION): boolean {
    // Only checkpoints of the live state's reading revision count: after an upgrade the live fold
    // cannot start from an older one's objects, so the first one of the new revision is due soon.
    // But never over another at the last seq (one seq holds one checkpoint): one of an older
    // revision there is what the versions made under it replay from.
    if (this.db.prepare('SELECT 1 FROM checkpoints WHERE seq = ?').get(this.lastSeq())) return false;
    const last =
      (
        this.db
          .prepare('SELECT max(seq) AS s FROM checkpoints WHERE coalesce(reading_revision, 1) = ?')
          .get(readingRevision) as { s: number | null }
      ).s ?? 0;
    return this.lastSeq() - last >= every;
  }

  // Row copying for the replicated log (libs/eventlog/replication.ts; rows in log-rows.ts).

  /** Where this log stands: each chain's head (id and hash) and its newest checkpoint. */
  position(): LogPosition {
    return positionOf(this.db);
  }

  /** Where a whole export of this file starts (each chain's anchor), without exporting it. */
  anchorPosition(): LogPosition {
    return anchorPositionOf(this.db);
  }

  /**
   * The chain rows this file holds (each chain's head id less its anchor's): what a snapshot of it
   * carries, which compaction bounds, while position()'s ids count every row ever written.
   */
  heldRows(): number {
    return this.db.prepare('SELECT coalesce(sum(head_id - anchor_id), 0) FROM chain_heads').pluck().get() as number;
  }

  /** True when this log holds `p` exactly (the row at each chain's head id carries p's hash). */
  holds(p: LogPosition): boolean {
    return holdsPosition(this.db, p);
  }

  /** True when some chain (or checkpoint) of this log runs past `p`. */
  isAhead(p: LogPosition): boolean {
    return isAhead(this.db, p);
  }

  /** Every row after `since` (a position of this log, else DIVERGED), verbatim; `whole`: all held rows. */
  exportRows(since: LogPosition, opts: { whole?: boolean; upTo?: LogPosition } = {}): RowBatch {
    return runSteps(this.exportRowsSteps(since, opts));
  }

  /** exportRows with its checkpoint pieces read a piece a step (log-rows.ts exportRowsSteps). */
  exportRowsSteps(
    since: LogPosition,
    opts: { whole?: boolean; upTo?: LogPosition } = {},
  ): Generator<void, RowBatch, void> {
    if (opts.whole) return exportRowsSteps(this.db, since, opts);
    // An export from `since` on: the replicated log's flushes, whose `since` only moves forward.
    this.recentEvents.dropThrough(since.chains.events.id);
    return exportRowsSteps(this.db, since, { ...opts, recentEvents: this.recentEvents });
  }

  /**
   * The whole log as of `upTo` in slices read beside the writer, a slice per event-loop turn
   * (log-row-slices.ts): a snapshot must not hold the leader's thread. A log in memory has no file
   * to read beside it: its export, made at once.
   */
  wholeSlices(upTo: LogPosition): AsyncGenerator<RowSlice> {
    if (this.file === ':memory:' || this.file === '')
      return batchSlices(exportRows(this.db, upTo, { whole: true, upTo }));
    return wholeLogSlices(this.file, upTo);
  }

  /**
   * Writes rows exported from another log of the same history verbatim (ids and hashes kept) in one
   * transaction, with the replication mark when given: all of it or, when a row does not continue
   * this file's chains, nothing (DIVERGED / INVALID).
   */
  importRows(batch: RowBatch, opts: { mark?: ReplicationMark; adoptAnchors?: boolean } = {}): void {
    this.importRowsWith(batch, opts, new Set());
  }

  /**
   * importRows with the batch's checkpoint pieces checked and written first, a piece a step and a
   * transaction (stageBatchPiecesSteps), then the rest in one transaction as importRows writes it:
   * a follower applying a first checkpoint's batch at 10,000 services of 250 endpoints held its
   * thread ~8 s in one transaction. All or nothing as before: pieces staged for an import that is
   * refused or given up (the generator returned early) are removed; a crash leaves them to the
   * next staging, and no reader sees them meanwhile (checkpoints.ts stagePiecesSteps).
   */
  *importRowsSteps(
    batch: RowBatch,
    opts: { mark?: ReplicationMark; adoptAnchors?: boolean } = {},
  ): Generator<void, void, void> {
    const write: LogWrite = (what, fn) => this.writes.run(what, fn);
    let done = false;
    try {
      const staged = yield* stageBatchPiecesSteps(this.db, batch, write);
      this.importRowsWith(batch, opts, staged);
      done = true;
    } finally {
      // (a write failing here too: the next staging removes them, and the import's own error is the one to see)
      if (!done)
        try {
          write('removal of checkpoint pieces no checkpoint owns', () => dropUnownedPieces(this.db));
        } catch {}
    }
  }

  private importRowsWith(
    batch: RowBatch,
    opts: { mark?: ReplicationMark; adoptAnchors?: boolean },
    staged: ReadonlySet<number>,
  ): void {
    const at = this.now().toISOString();
    this.recentEvents.clear(); // rows written by another process from here on
    this.configRevisions.clear();
    this.writes.run('import of replicated rows', () => {
      importRows(this.db, batch, { ...opts, staged });
      if (opts.mark) writeMark(this.db, opts.mark, at);
    });
    // The batch's resume points are the group's; a save still pending here (a stopped informer's,
    // its event never appended) would be written over them by the next append.
    this.resume?.discardPending();
  }

  /**
   * Drops every row after `to` (a position this log holds) in one transaction, records what was
   * dropped in replication_truncations (with the rows) and sets the resume points and mark given
   * (no resume points given: none are kept).
   */
  truncateTo(
    to: LogPosition,
    record: {
      stream: string;
      streamSeq: number;
      reason: string;
      resumePoints?: readonly RawRow[];
      mark?: ReplicationMark;
    },
  ): TruncationRecord | undefined {
    const at = this.now().toISOString();
    const from = this.position();
    const id = this.writes.run('truncation to the replicated position', () => {
      if (!holdsPosition(this.db, to))
        throw new EventLogError('DIVERGED', 'truncate: this log does not hold the position to truncate to');
      this.recentEvents.clear();
      this.configRevisions.clear();
      const dropped = truncateRows(this.db, to);
      // The stored resume points were written with the newest rows, the dropped ones included: an
      // informer resuming from them would never see the dropped events again. Without the group's
      // (those of the batch that ends at `to`), keep none: the informer relists and diffs against
      // the objects the log holds, as after a 410.
      this.db.prepare('DELETE FROM resume_points').run();
      if (record.resumePoints) replaceResumePoints(this.db, record.resumePoints);
      if (record.mark) writeMark(this.db, record.mark, at);
      return recordTruncation(this.db, {
        at,
        stream: record.stream,
        streamSeq: record.streamSeq,
        reason: record.reason,
        from,
        to,
        dropped,
      });
    });
    this.resume?.discardPending(); // saves made for rows this log no longer holds, or never held
    return listTruncations(this.db).find((t) => t.id === id);
  }

  /** Truncations recorded in this file, oldest first. */
  truncations(): TruncationRecord[] {
    return listTruncations(this.db);
  }

  replicationMark(): ReplicationMark | undefined {
    return readMark(this.db);
  }

  setReplicationMark(m: ReplicationMark): void {
    const at = this.now().toISOString();
    this.writes.run('replication mark', () => writeMark(this.db, m, at));
  }

  /**
   * Pending resume-point saves are dropped, not written: they may be past events that were queued
   * but never appended (a failed drain at stop, a full disk), and the informer then resumes from
   * the last resume point an append covered, re-delivering the rest as after a crash.
   */
  close(): void {
    if (!this.db.open) return;
    this.resume?.discardPending();
    this.db.close();
    this.fileWatch.close();
    this.writerLock?.release();
  }
}
