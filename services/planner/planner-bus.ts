import type {
  AckOrNack,
  ConfigRevision,
  Heartbeat,
  KnownTexts,
  NodeTarget,
  ServicePatch,
  VersionArtifact,
} from '../../libs/model/index.ts';

/**
 * The slice of the bus the planner calls. The NATS implementation is nats-planner-bus.ts; the
 * planner core depends on this shape only, so it never imports a NATS client.
 */
export interface PlannerBus {
  /** The newest data version the versions stream holds (0: none), for republish after a restart. */
  lastPublishedVersion(): number;
  /**
   * The hash the versions stream holds for `version` (its delta's, or its checkpoint's when it is
   * published as a checkpoint only); undefined when the stream has no readable copy (expired).
   */
  publishedHash(version: number): Promise<string | undefined>;
  /**
   * Whether the versions stream (or the targets bucket) is gone and was made again since it was
   * last read: the planner is then told to republish (its reset hook). Asked while the planner
   * holds targets back because its log and the stream disagree, so a stream an operator deleted
   * (the way out of that, docs/operations.md "Restoring from a backup") is found without a restart
   * (probe13 R5). Optional: a bus without a store to lose answers nothing.
   */
  storeLost?(): Promise<boolean>;
  /**
   * Publishes one version; `data` builds the full form when the bus wants a checkpoint. `texts`:
   * JSON.stringify texts already made for some entries (the ones hashed for this version), so
   * they are not serialised again; the bytes published are the same without them. `patches`: its
   * large services as patches (NewVersion.patches), for the target notice that follows.
   */
  publish(
    artifact: VersionArtifact & { form: 'delta' },
    data: () => (VersionArtifact & { form: 'checkpoint' })['data'],
    texts?: KnownTexts,
    patches?: readonly ServicePatch[],
  ): Promise<void>;
  /**
   * Publishes one version as a base: its checkpoint (built by `data`) and a marker naming it, on a
   * stream that lacks the versions before it, which the log can no longer rebuild (review2 R8).
   * Nodes load it without its parent; later versions are published as usual on top of it.
   */
  publishBase(
    header: Omit<VersionArtifact, 'form' | 'delta' | 'data'>,
    data: () => (VersionArtifact & { form: 'checkpoint' })['data'],
  ): Promise<void>;
  /**
   * What the versions stream lacks of what a node needs to load the last published version (its
   * delta, the checkpoint it names, the deltas between; with none published, every version of a
   * stream that held some), undefined when nothing: a limit with discard old dropped them
   * (probe17 N1). Optional: a bus without a store that drops answers nothing. `askedAhead`: a new
   * leader's first look may take the answer its claim asked ahead, unless the bus's view of the
   * stream moved since (NatsPlannerBus: a reopen after a lost store, an append, a new claim).
   */
  streamLacks?(o?: { askedAhead?: boolean }): Promise<string | undefined>;
  /**
   * Publishes the last published version (or, with none left, the newest the log holds) again as
   * a base, its checkpoint and a marker naming it, in place of what streamLacks found gone.
   */
  rebase?(
    header: Omit<VersionArtifact, 'form' | 'delta' | 'data'>,
    data: () => (VersionArtifact & { form: 'checkpoint' })['data'],
  ): Promise<void>;
  /**
   * The content hash of config revision `rev` as the targets bucket holds it (undefined: none).
   * A log behind the bus (restored, fresh) would otherwise make its next revision under a number
   * the bucket holds with other content (probe13 R8). Optional: a bus without revisions has none.
   */
  configRevisionHash?(rev: number): Promise<string | undefined>;
  /** Makes a config revision readable by appliers (before any target names it). */
  putConfigRevision(rev: ConfigRevision): Promise<void>;
  setDefaultTarget(target: NodeTarget): Promise<void>;
  /** Sets (or with undefined, removes) one node's override. */
  setNodeTarget(node: string, target: NodeTarget | undefined): Promise<void>;
  /**
   * Removes the override keys of every node not in `keep` (a Node deleted from the cluster:
   * probe9 K1). Optional: a bus without per-node keys has nothing to remove.
   */
  removeNodeTargets?(keep: Iterable<string>): Promise<void>;
  /**
   * Clears every override in the bus for a node not in `keep`, this planner's or not (one left by a
   * planner stopped mid-rollout whose log this one does not have). Optional: without it the writer
   * clears only the overrides it wrote.
   */
  clearOverridesExcept?(keep: Iterable<string>): Promise<void>;
  /** Starts delivering acks and heartbeats; callbacks are awaited one at a time. */
  listen(hooks: {
    onAck: (a: AckOrNack) => Promise<void> | void;
    onHeartbeat: (h: Heartbeat) => Promise<void> | void;
    /** A report dropped as not valid; `node`: the node its subject names (whatever its payload says). */
    onInvalid?: (node: string, error: string) => void;
  }): void;
  close(): Promise<void>;
}
