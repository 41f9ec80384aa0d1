import type { EventLog } from '../../libs/eventlog/index.ts';
import type { AckOrNack } from '../../libs/model/index.ts';
import type { ReportLogGate } from './report-log-gate.ts';
import type { StepFailures } from './step-failures.ts';

export interface ReportWriterOptions {
  readonly log: EventLog;
  /** The gate that decides which reports are rows (read at each use: the planner's own). */
  readonly gate: () => ReportLogGate;
  /** The planner's serial queue: every write runs in it. */
  readonly serial: <T>(fn: () => Promise<T> | T) => Promise<T>;
  readonly failures: StepFailures;
  readonly stopped: () => boolean;
}

/**
 * Writes the ACK/NACKs the gate lets through (review3 N2) to the log: the held ones once their
 * nodes' budgets allow, the ones that arrive together in one transaction (group commit), and the
 * ones the log refused (a full disk) again every second until it takes them (review4 G5).
 */
export class ReportWriter {
  private reportFlush: NodeJS.Timeout | undefined;
  /**
   * Reports the log could not take (a full disk), newest per node in arrival order, written again
   * by a retry every second until the log takes them (review4 G5).
   */
  private readonly unlogged = new Map<string, AckOrNack>();
  private unloggedRetry: NodeJS.Timeout | undefined;
  /** Reports to write at the next group commit, in arrival order (every one is a row). */
  private pendingReports: AckOrNack[] = [];
  /** The step that writes queued reports in one transaction (armReportWrite). */
  private reportWrite: NodeJS.Immediate | undefined;

  constructor(private readonly o: ReportWriterOptions) {}

  /** Clears every timer; what is still pending is written by the caller's last log() (Planner.stop). */
  stop(): void {
    clearTimeout(this.reportFlush);
    clearTimeout(this.unloggedRetry);
    clearImmediate(this.reportWrite);
  }

  /** Writes the held reports (ReportLogGate) once their nodes' budgets allow. */
  armFlush(now: number): void {
    if (this.reportFlush || this.o.stopped()) return;
    const due = this.o.gate().nextDueAt(now);
    if (due === undefined) return;
    this.reportFlush = setTimeout(
      () =>
        void this.o
          .serial(() => {
            this.reportFlush = undefined;
            this.log(this.o.gate().takeDue(performance.now()));
            this.armFlush(performance.now());
          })
          .then(
            () => this.o.failures.recovered('ack'),
            (e) => this.o.failures.fail('ack', e),
          ),
      Math.max(0, due - now),
    );
    this.reportFlush.unref?.();
  }

  /**
   * Writes reports to the log (in the serial queue). One the log refuses (a full disk: nothing was
   * written) is kept as its node's unlogged report, replacing an older one (the log's last report
   * for a node stays the node's last word, as the gate's held slot does), and the failure shows as
   * `ack log` (lastError, /readyz 503) while any report waits; a retry every second writes them in
   * arrival order once the log takes them again; stop() tries once more, and what still waits is
   * lost with the process (the failure says so until then).
   */
  log(reports: readonly AckOrNack[], when: 'now' | 'soon' = 'now'): void {
    this.pendingReports.push(...reports);
    if (when === 'soon') this.armReportWrite();
    else this.writeUnlogged();
  }

  /**
   * Group commit (review4 G9): every report was its own transaction, one fsync each, back to back
   * on the planner's thread; a fleet ACKing a version within milliseconds then held the thread for
   * nodes × fsync latency (20 nodes at a 1 s fsync, 600 at 20 ms), past the lease renewal: the
   * leader stepped down, was re-elected, wrote them again and stepped down again, for ever. ACKs
   * that arrive together (one socket read delivers many) are queued by their steps and written
   * by one step after them, in one transaction; all or none, so a refused write keeps them all.
   */
  private armReportWrite(): void {
    if (this.reportWrite || this.o.stopped()) return;
    this.reportWrite = setImmediate(
      () =>
        void this.o
          .serial(() => {
            this.reportWrite = undefined;
            this.writeUnlogged();
          })
          .catch((e) => this.o.failures.fail('ack log', e)),
    );
  }

  /** Writes the reports refused before, then the pending ones, in arrival order, as one transaction. */
  private writeUnlogged(): void {
    const pending = this.pendingReports;
    this.pendingReports = [];
    if (this.unlogged.size === 0 && pending.length === 0) return this.o.failures.recovered('ack log');
    try {
      const log = this.o.log;
      log.atomically(() => {
        for (const a of this.unlogged.values()) log.recordAck(a);
        for (const a of pending) log.recordAck(a);
      });
    } catch (e) {
      // nothing was written: each node keeps its newest report for the retry
      for (const a of pending) {
        if (this.unlogged.delete(a.node)) this.o.gate().notRecorded++; // replaced before it was written
        this.unlogged.set(a.node, a);
      }
      this.o.failures.fail('ack log', e);
      this.armUnloggedRetry();
      return;
    }
    this.unlogged.clear();
    this.o.failures.recovered('ack log');
  }

  private armUnloggedRetry(): void {
    if (this.unloggedRetry || this.o.stopped()) return;
    this.unloggedRetry = setTimeout(
      () =>
        void this.o
          .serial(() => {
            this.unloggedRetry = undefined;
            this.log([]);
          })
          .catch((e) => this.o.failures.fail('ack log', e)),
      1000,
    );
    this.unloggedRetry.unref?.();
  }
}
