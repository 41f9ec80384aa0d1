import type { EventLog } from '../../libs/eventlog/index.ts';
import type { ExpectedHashes } from '../../libs/control/index.ts';
import type { AckOrNack, NodeTarget } from '../../libs/model/index.ts';
import type { ConfigAxis, DataAxis } from '../../libs/versioning/index.ts';
import { ExpectedHashCache, NodeHashChecks } from './node-hash-checks.ts';

export interface AckExpectationsOptions {
  readonly log: EventLog;
  /** The planner's data and config (read at each use: a follower's are rebuilt by refresh). */
  readonly axes: { readonly data: DataAxis; readonly config: ConfigAxis };
  readonly role: () => 'leader' | 'follower';
  /** A slice of checks finished for these nodes. */
  readonly onChecked: (nodes: readonly string[]) => void;
  /** Rendering `node`'s state failed. */
  readonly onError: (node: string, err: unknown) => void;
}

/**
 * What an ACK must echo, as far as the planner can check: the data hash the log recorded for its
 * version, and for the latest version the node-state hash the planner renders itself, off the read
 * paths (NodeHashChecks), only for nodes that ACKed that version.
 */
export class AckExpectations {
  /**
   * The node-state hashes ACKs of the latest version must echo, rendered off the read paths, only
   * for nodes that ACKed that version, in slices that yield (review4 G7).
   */
  readonly checks: NodeHashChecks;
  /** What checks computes from: the shared part of every node's rendering, once per version and revision. */
  private readonly expectedHashes = new ExpectedHashCache();
  /** The data hash the log recorded per version (a version's hash never changes), for ACK checks. */
  private readonly logHashes = new Map<number, string>();

  constructor(private readonly o: AckExpectationsOptions) {
    this.checks = new NodeHashChecks({
      compute: (node, version, revision) => this.renderHash(node, version, revision),
      prepare: (version, revision) => this.prepareHashes(version, revision),
      onChecked: (nodes) => o.onChecked(nodes),
      onError: (node, e) => o.onError(node, e),
    });
  }

  /**
   * What an ACK of `t` by `node` must echo, as far as the planner can check: the data hash its
   * log recorded for that version, and for the latest version (the content it holds) its own
   * rendering of the node's state — as computed by checks, never here: until then the
   * expectation says `nodeStateChecking`, and the check is asked for when the node ACKed `t`
   * (`acked`; a node that did not has nothing to check: a departed one is never rendered).
   */
  expectedOf(node: string, t: NodeTarget, latest: number | undefined, acked: boolean): ExpectedHashes {
    // A leader's log holds every version it published: a later one was never made (probe10 H3). A
    // follower's view may lag the group's log (it rebuilds on a report of a newer one: viewBehind).
    const newestVersion = this.o.role() === 'leader' ? latest : undefined;
    const dataHash = this.logHash(t.version);
    // Version 0, or a revision this planner's log does not hold: nothing to compare (as before).
    if (t.version !== latest || t.version === 0 || !this.o.axes.config.revision(t.configRevision))
      return { dataHash, newestVersion };
    const nodeStateHash = this.checks.get(node, t.version, t.configRevision);
    if (nodeStateHash !== undefined) return { dataHash, nodeStateHash, newestVersion };
    if (!acked) return { dataHash, newestVersion };
    this.checks.want(node, t.version, t.configRevision);
    return { dataHash, nodeStateChecking: true, newestVersion };
  }

  /** An ACK of the latest version: its node-state hash is computed now, off the read paths, not when first read. */
  checkLater(a: AckOrNack): void {
    if (a.type !== 'ACK' || a.version !== this.o.axes.data.latest()?.version) return;
    if (this.o.axes.config.revision(a.configRevision)) this.checks.want(a.node, a.version, a.configRevision);
  }

  /** The ACKs heard (or seeded) of the latest version are checked now, not from the first read. */
  checkAll(heard: readonly AckOrNack[]): void {
    for (const a of heard) this.checkLater(a);
  }

  /** checks' one hash: `node`'s state at the latest version under `revision` (undefined once that moved). */
  private renderHash(node: string, version: number, revision: number): Iterator<void, string | undefined> | undefined {
    const data = this.o.axes.data;
    if (data.latest()?.version !== version) return undefined;
    const rev = this.o.axes.config.revision(revision);
    if (!rev) return undefined;
    const steps = this.expectedHashes.hashSteps(node, {
      version,
      revision,
      config: rev.config,
      data: data.publishedData(),
    });
    const latest = () => this.o.axes.data.latest()?.version;
    // stops as soon as the published data moves to another version (the check is dropped)
    return (function* () {
      while (latest() === version) {
        const r = steps.next();
        if (r.done) return r.value;
        yield;
      }
      return undefined;
    })();
  }

  /**
   * checks' preparation: the shared rendering of the latest version under `revision`, in
   * steps that stop as soon as the version moves on (the published data then is another
   * version's; a newer version's checks start their own).
   */
  private prepareHashes(version: number, revision: number): Iterator<void> | undefined {
    const rev = this.o.axes.config.revision(revision);
    const data = this.o.axes.data;
    if (data.latest()?.version !== version || !rev) return undefined;
    const steps = this.expectedHashes.prepare({
      version,
      revision,
      config: rev.config,
      data: data.publishedData(),
    });
    if (!steps) return undefined;
    const latest = () => this.o.axes.data.latest()?.version;
    return (function* () {
      while (latest() === version && !steps.next().done) yield;
    })();
  }

  private logHash(version: number): string | undefined {
    let h = this.logHashes.get(version);
    if (h === undefined && version > 0) {
      h = this.o.log.version(version)?.hash;
      if (h === undefined) return undefined;
      if (this.logHashes.size > 10_000) this.logHashes.clear();
      this.logHashes.set(version, h);
    }
    return h;
  }
}
