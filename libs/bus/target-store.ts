import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { jetstream, jetstreamManager, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { StaleLeaderError } from './stale-leader.ts';
import { asRefusal, ensureStreamReplicas } from './stream-replicas.ts';
import { liftStreamLimits, limitsTakenOffLine } from './stream-limits.ts';
import {
  checkWire,
  ConfigRevisionSchema,
  contentHash,
  parseWire,
  SignedTargetSchema,
  type ConfigRevision,
  type NodeTarget,
  type NoticeDelta,
  type SignedTarget,
} from '../model/index.ts';
import {
  configStatement,
  targetNoticeStatement,
  targetPatchStatement,
  targetStatement,
  verifierFromPem,
  type Signer,
} from './planner-signature.ts';
import {
  configKey,
  DEFAULT_TARGET_KEY,
  nodeTargetKey,
  targetNoticeSubject,
  TARGETS_BUCKET,
  TARGETS_STREAM,
} from './subjects.ts';

export interface Targets {
  readonly default: NodeTarget | undefined;
  /** Per-node overrides, keyed by node token (node name with '.' as '_'). */
  readonly nodes: ReadonlyMap<string, NodeTarget>;
}

/**
 * Planner side of targets: the KV bucket sb_targets holds `default` and `node.<token>` overrides
 * plus `config.<rev>` (ConfigRevision JSON, written once, before any target names it). Appliers
 * only read it; the server config denies them every write.
 *
 * Each target is a SignedTarget: signed with the KV key it belongs to and stamped with `issued`,
 * a number this store makes strictly increasing (at least the newest found in the bucket + 1, at
 * least the clock in ms). Appliers order entries by `issued`, so a NATS store loss (KV revisions
 * restart at 1) does not stop them following, and a notice with a forged revision moves nothing.
 * Clearing an override writes a signed `cleared` entry rather than deleting the key.
 */
export interface TargetStoreOptions {
  readonly nc: NatsConnection;
  readonly history?: number;
  readonly signer?: Signer;
  readonly now?: () => number;
  /** Copies of the bucket in the NATS cluster (--replicas; default 1). */
  readonly replicas?: number;
  /** The bucket had limits of its own, taken off (replicatedBucket). */
  readonly onLimitsReset?: (line: string) => void;
}

export class TargetStore {
  private issued = 0;
  /** The KV revision of each key as this store last wrote or read it: every write expects it (0: absent). */
  private readonly revisions = new Map<string, number>();
  /** The entry this store last put in each target key (restoreOverwritten's reference). */
  private readonly mine = new Map<string, { revision: number; text: string; issued: number }>();
  /** The `node.` keys that hold a target (not `cleared`), as read at open or claim and written since. */
  private readonly liveOverrides = new Set<string>();

  private constructor(
    private readonly nc: NatsConnection,
    private kv: KV,
    private readonly options: TargetStoreOptions,
  ) {}

  static async open(o: TargetStoreOptions): Promise<TargetStore> {
    const s = new TargetStore(o.nc, await createBucket(o), o);
    await s.learnIssued();
    return s;
  }

  /** Recreates the bucket after NATS lost its store (idempotent when it exists). */
  async reopen(): Promise<void> {
    this.kv = await createBucket(this.options);
    await this.learnIssued();
  }

  /**
   * A new leader's claim: every key's revision and the newest `issued` read afresh (what the
   * previous leader wrote is where this one starts), by stream info and direct gets only: no
   * bucket or consumer is made, since those go through JetStream's meta leader and are placed on
   * the stream's peers, a dead one included, and timed out for as long as one server of three was
   * down (probe5 H1). A bucket that is gone (NATS lost its store) is made again.
   */
  async relearn(): Promise<void> {
    try {
      await this.learnIssued(await this.leaderReads());
    } catch (e) {
      if (!(e instanceof JetStreamApiError && e.code === 10059)) throw e; // 10059: stream not found
      await this.reopen();
    }
  }

  /**
   * Moves the cluster default. `delta`: the target version's delta as the versions stream stored
   * it (VersionPublisher.storedDelta), carried on the notice so a node has the target and its data
   * in one message; every node follows the default, so it rides there and on no override notice.
   * `patch`: the same version with its large services as patches (VersionPublisher.storedPatch),
   * carried instead of the delta when it fits: a few endpoints per node instead of whole entries.
   */
  async setDefaultTarget(t: NodeTarget, delta?: NoticeDelta, patch?: NoticeDelta): Promise<number> {
    return this.write(DEFAULT_TARGET_KEY, checkTarget(t), { delta, patch });
  }

  async setNodeTarget(node: string, t: NodeTarget): Promise<number> {
    return this.write(nodeTargetKey(node), checkTarget(t));
  }

  async clearNodeTarget(node: string): Promise<void> {
    await this.write(nodeTargetKey(node), 'cleared');
  }

  /**
   * Clears every override that names a node not in `keep` (the nodes the writer overrides now),
   * whoever wrote it: a planner restored from a backup, or one whose predecessor was stopped in
   * the middle of a rollout its log does not hold, found that predecessor's overrides in the
   * bucket, never cleared them (it clears only those it wrote), and those nodes ran a config
   * revision its log did not hold (CI, 2026-12-04). Returns the keys cleared.
   */
  async clearOverridesExcept(keep: Iterable<string>): Promise<string[]> {
    const kept = new Set([...keep].map(nodeTargetKey));
    const stray = [...this.liveOverrides].filter((k) => !kept.has(k));
    for (const key of stray) await this.write(key, 'cleared');
    return stray;
  }

  /** Whether clearOverridesExcept(keep) would write anything (no I/O). */
  hasOverridesBeyond(keep: Iterable<string>): boolean {
    const kept = new Set([...keep].map(nodeTargetKey));
    for (const k of this.liveOverrides) if (!kept.has(k)) return true;
    return false;
  }

  /**
   * Removes the override keys of nodes that are gone from the cluster (probe9 K1): every
   * `node.<token>` key this store knows (the bucket's, listed at open and at each claim, and those
   * it wrote since) whose node is not in `keep` (node names). Clearing an override leaves a signed
   * `cleared` entry on purpose (appliers order by `issued`), so before this the key of every Node
   * ever overridden stayed in the bucket for good, and a cluster whose node names churn grew it
   * without bound. The key's messages are purged from the bucket's stream up to the revision this
   * store knows and no further: a newer leader's write of it (a node of that name back) survives,
   * and this store's next write of the key then fails as stale, as any other would. An applier
   * still running on a deleted Node finds no entry and keeps what it followed (the key was
   * `cleared`, or its override ended with the rollout). Returns the keys removed.
   */
  async removeNodeTargets(keep: Iterable<string>): Promise<string[]> {
    const gone = this.goneNodeKeys(keep).map((k) => [k, this.revisions.get(k)!] as const);
    if (gone.length === 0) return [];
    const jsm = await jetstreamManager(this.nc);
    for (const [key, revision] of gone) {
      // seq: purges the subject's messages below it, so only those up to the revision known
      if (revision > 0)
        await jsm.streams.purge(TARGETS_STREAM, { filter: `$KV.${TARGETS_BUCKET}.${key}`, seq: revision + 1 });
      this.revisions.delete(key);
      this.liveOverrides.delete(key);
    }
    return gone.map(([k]) => k);
  }

  /** The `node.` keys this store knows whose node is not in `keep` (what removeNodeTargets removes; no I/O). */
  goneNodeKeys(keep: Iterable<string>): string[] {
    const kept = new Set([...keep].map(nodeTargetKey));
    return [...this.revisions.keys()].filter((k) => k.startsWith('node.') && !kept.has(k));
  }

  /**
   * KV first (the durable truth, read at start, after reconnects and periodically), then a
   * core-NATS notice carrying the same signed entry: appliers act on the notice at once.
   */
  private async write(
    key: string,
    t: NodeTarget | 'cleared',
    data: { delta?: NoticeDelta; patch?: NoticeDelta } = {},
  ): Promise<number> {
    this.issued = Math.max(this.issued + 1, this.options.now?.() ?? Date.now());
    const sig = this.options.signer?.sign(targetStatement(key, t, this.issued)) ?? '';
    const entry: SignedTarget =
      t === 'cleared'
        ? { cleared: true, issued: this.issued, sig }
        : { version: t.version, configRevision: t.configRevision, issued: this.issued, sig };
    const text = JSON.stringify(entry);
    const revision = await this.conditionalPut(key, text);
    this.mine.set(key, { revision, text, issued: this.issued });
    if (key.startsWith('node.')) {
      if (t === 'cleared') this.liveOverrides.delete(key);
      else this.liveOverrides.add(key);
    }
    // One signature over target and data together: a node verifies one instead of two per event.
    // The patch when there is one and it fits, else the delta when it fits, else neither.
    const max = (this.nc.info?.max_payload ?? 1024 * 1024) / 2;
    const fits = (d: NoticeDelta | undefined) => d !== undefined && noticeBytes(revision, entry, d) <= max;
    const patch = fits(data.patch) ? data.patch : undefined;
    const delta = patch === undefined && fits(data.delta) ? data.delta : undefined;
    const signer = this.options.signer;
    const statement = !signer
      ? undefined
      : patch
        ? targetPatchStatement(key, entry, patch)
        : delta && targetNoticeStatement(key, entry, delta);
    const noticeSig = statement ? signer!.sign(statement) : undefined;
    const notice = { revision, target: entry, ...(delta ? { delta } : {}), ...(patch ? { patch } : {}) };
    this.nc.publish(targetNoticeSubject(key), JSON.stringify({ ...notice, ...(noticeSig ? { sig: noticeSig } : {}) }));
    return revision;
  }

  /**
   * A put that expects the key's revision as this store last saw it; another planner's write in
   * between (a newer leader) makes it fail with StaleLeaderError. A key this store never saw is
   * read first (its revision, or absent).
   */
  private async conditionalPut(key: string, text: string): Promise<number> {
    let expected = this.revisions.get(key);
    if (expected === undefined) {
      const e = await this.kv.get(key);
      expected = e ? e.revision : 0;
    }
    try {
      const rev = expected === 0 ? await this.kv.create(key, text) : await this.kv.update(key, text, expected);
      this.revisions.set(key, rev);
      return rev;
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === 10071) {
        this.revisions.delete(key);
        throw new StaleLeaderError(`targets bucket: ${key} was written by another planner since revision ${expected}`);
      }
      throw e;
    }
  }

  /**
   * Puts this store's own entry back into each target key it wrote that now holds another one
   * (probe10 H1: a verbatim copy of an old signed target from the key's history, a delete, any
   * foreign text) or none (purged by hand: see below); returns the keys restored with the foreign
   * entry's revision (0: purged). An entry with a
   * newer `issued` (signed with this planner's key, when it signs) is a newer leader's and is left
   * alone: the next write meets it as a fence. Keys this store has since written otherwise, or lost
   * track of (a fenced write), are not checked. The notice goes out again for nodes that followed
   * the foreign entry.
   */
  async restoreOverwritten(): Promise<{ key: string; revision: number }[]> {
    const restored: { key: string; revision: number }[] = [];
    const verifier = this.options.signer ? verifierFromPem(this.options.signer.publicKeyPem) : undefined;
    // the default first: whether it is absent tells who removed the node keys that are (below)
    const keys = [...this.mine].sort(([a], [b]) => Number(b === DEFAULT_TARGET_KEY) - Number(a === DEFAULT_TARGET_KEY));
    let defaultPurged = false;
    for (const [key, m] of keys) {
      if (this.revisions.get(key) !== m.revision) {
        this.mine.delete(key);
        continue;
      }
      const e = await this.kv.get(key);
      if (e?.revision === m.revision) continue;
      if (!e) {
        // No entry at all: its messages were purged (`nats stream purge KV_sb_targets`, `nats kv
        // purge`), and a fresh node would find no target. A planner never purges the default; it
        // purges the key of a Node gone from the cluster (removeNodeTargets), a newer leader
        // perhaps, so an absent node key is put back only when the default was purged too.
        if (key === DEFAULT_TARGET_KEY) defaultPurged = true;
        else if (!defaultPurged) continue;
        this.revisions.set(key, 0);
        const revision = await this.conditionalPut(key, m.text);
        this.mine.set(key, { ...m, revision });
        this.nc.publish(targetNoticeSubject(key), JSON.stringify({ revision, target: JSON.parse(m.text) }));
        restored.push({ key, revision: 0 });
        continue;
      }
      const t = e.operation === 'PUT' ? parseWire(SignedTargetSchema, e.value, key) : undefined;
      if (t && 'value' in t && t.value.issued > m.issued) {
        const entry = t.value;
        const statement = targetStatement(key, 'cleared' in entry ? 'cleared' : entry, entry.issued);
        if (!verifier || verifier.verify(statement, entry.sig)) continue;
      }
      this.revisions.set(key, e.revision);
      const revision = await this.conditionalPut(key, m.text);
      this.mine.set(key, { ...m, revision });
      this.nc.publish(targetNoticeSubject(key), JSON.stringify({ revision, target: JSON.parse(m.text) }));
      restored.push({ key, revision: e.revision });
    }
    return restored;
  }

  /** The config revisions the targets this store wrote name (what a node following them fetches). */
  targetedConfigRevisions(): Set<number> {
    const named = new Set<number>();
    for (const m of this.mine.values()) {
      const t = JSON.parse(m.text) as { configRevision?: number };
      if (t.configRevision !== undefined) named.add(t.configRevision);
    }
    return named;
  }

  /**
   * The bucket for a claim's reads: each key's newest entry asked of the stream's leader (as its
   * keys are: stream info), not by a direct get, which any replica answers, a frozen one included
   * (sockets open, its route not yet known dead): such a get waited out its whole 5 s timeout, and
   * the step read every key again, until the claim gave its term up (`reading the targets
   * bucket's keys: timeout (5 tries in 29 s)`, test/ha/frozen-server.test.ts once in CI). A leader
   * in election does not answer either: the short timeout has the step tried again sooner
   * (claim-step.ts). Binding makes no request.
   */
  private leaderReads(): Promise<KV> {
    return new Kvm(jetstream(this.nc, { timeout: CLAIM_READ_TIMEOUT_MS })).open(TARGETS_BUCKET, {
      allow_direct: false,
    });
  }

  /** The newest `issued` already in the bucket (another run of this planner wrote it), and each key's revision. */
  private async learnIssued(kv: KV = this.kv): Promise<void> {
    this.revisions.clear();
    this.mine.clear();
    this.liveOverrides.clear();
    for (const k of [DEFAULT_TARGET_KEY, ...(await this.nodeKeys())]) {
      const e = await kv.get(k);
      if (e) this.revisions.set(k, e.revision);
      const t = e && e.operation === 'PUT' ? parseWire(SignedTargetSchema, e.value, k) : undefined;
      if (t && 'value' in t) this.issued = Math.max(this.issued, t.value.issued);
      // anything but a valid `cleared` may steer a node: an override to clear unless the writer keeps it
      if (k.startsWith('node.') && e?.operation === 'PUT' && !(t && 'value' in t && 'cleared' in t.value))
        this.liveOverrides.add(k);
    }
  }

  /** The `node.` keys (bucketKeys: no consumer, so a claim works while a server is dead: probe5 H1). */
  private nodeKeys(): Promise<string[]> {
    return bucketKeys(this.nc, TARGETS_BUCKET, 'node.');
  }

  async getTargets(): Promise<Targets> {
    const read = async (k: string): Promise<NodeTarget | undefined> => {
      const e = await this.kv.get(k);
      const t = e && e.operation === 'PUT' ? parseWire(SignedTargetSchema, e.value, k) : undefined;
      return t && 'value' in t && !('cleared' in t.value)
        ? { version: t.value.version, configRevision: t.value.configRevision }
        : undefined;
    };
    const nodes = new Map<string, NodeTarget>();
    for (const k of await this.nodeKeys()) {
      const t = await read(k);
      if (t) nodes.set(k.slice('node.'.length), t);
    }
    return { default: await read(DEFAULT_TARGET_KEY), nodes };
  }

  /** Publishes a config revision; its hash must be contentHash(config). Idempotent for equal content. */
  async putConfigRevision(r: ConfigRevision): Promise<void> {
    if (r.hash !== contentHash(r.config))
      throw new Error(`config revision ${r.revision}: hash is not contentHash(config)`);
    const existing = await this.getConfigRevision(r.revision);
    if (existing) {
      if (existing.hash !== r.hash) throw new Error(`config revision ${r.revision} already exists with another hash`);
      if (!this.options.signer || existing.sig) return;
    }
    const sig = this.options.signer?.sign(configStatement(r.revision, r.hash));
    await this.conditionalPut(configKey(r.revision), JSON.stringify({ ...r, ...(sig ? { sig } : {}) }));
  }

  async getConfigRevision(rev: number): Promise<ConfigRevision | undefined> {
    const e = await this.kv.get(configKey(rev));
    this.revisions.set(configKey(rev), e?.revision ?? 0);
    if (!e || e.operation !== 'PUT') return undefined;
    const r = checkWire(ConfigRevisionSchema, e.json(), configKey(rev));
    if ('error' in r) throw new Error(r.error);
    return r.value;
  }
}

/**
 * The length of a notice carrying `data` (a delta or a patch), bounded to fit under half the
 * server's max_payload: a larger one stays off the notice, and nodes fetch the delta.
 */
function noticeBytes(revision: number, target: SignedTarget, data: NoticeDelta): number {
  // the signature's 88 base64 characters and its key are added later; counted here as 100 bytes
  return Buffer.byteLength(JSON.stringify({ revision, target, delta: data })) + 100;
}

/**
 * The keys of a KV bucket (those starting with `prefix`), from its stream's per-subject counts: one
 * stream-info request, paged by the client past the server's limit. `kv.keys()` makes an ordered
 * consumer per call — a meta-leader operation placed on any of the stream's peers, which outlives
 * the listing: a claim that listed keys timed out while a server was dead (probe5 H1), and a
 * listing every TTL/4 left hundreds of consumers behind (probe5 H7). A deleted key is still listed
 * (its marker is a message): its revision is what the next write expects.
 */
export async function bucketKeys(nc: NatsConnection, bucket: string, prefix = ''): Promise<string[]> {
  const subjects = `$KV.${bucket}.`;
  const info = await (await jetstreamManager(nc)).streams.info(`KV_${bucket}`, {
    subjects_filter: `${subjects}${prefix}>`,
  });
  return Object.keys(info.state.subjects ?? {})
    .filter((s) => s.startsWith(subjects + prefix))
    .map((s) => s.slice(subjects.length));
}

/**
 * Creates (or opens) a KV bucket holding `replicas` copies; an existing bucket is brought to that
 * count, and limits someone gave its stream (max_bytes, max_msgs, another history or lifetime) are
 * taken off and said through `onLimitsReset` (probe17 N1: with max_bytes and discard old the
 * targets bucket drops its oldest entries, the config revisions written once among them).
 */
export async function replicatedBucket(
  nc: NatsConnection,
  bucket: string,
  { onLimitsReset, ...o }: Partial<KvOptions> & { replicas?: number; onLimitsReset?: (line: string) => void },
): Promise<KV> {
  const replicas = o.replicas ?? 1;
  let kv: KV;
  try {
    kv = await new Kvm(nc).create(bucket, { ...o, replicas });
  } catch (e) {
    throw asRefusal(nc, replicas, e);
  }
  const jsm = await jetstreamManager(nc);
  await ensureStreamReplicas(nc, jsm, `KV_${bucket}`, replicas);
  if (o.ttl !== undefined) await ensureMaxAge(jsm, `KV_${bucket}`, o.ttl);
  const lifted = await liftStreamLimits(jsm, `KV_${bucket}`, {
    maxAge: o.ttl === undefined ? 0 : nanos(o.ttl),
    perSubject: o.history ?? 1,
  });
  if (lifted) onLimitsReset?.(limitsTakenOffLine('bucket', bucket, lifted));
  return kv;
}

/**
 * Brings an existing bucket's key lifetime to `ttlMs`: creating a bucket that exists keeps its old
 * configuration, so a group restarted with another --lease-ttl kept the first one's (probe5 H9: keys
 * expired after 6 s under planners acting for 3/4 of 15 s, so a new leader could claim inside the
 * old one's window). The duplicate window may not exceed the lifetime, so it follows it down.
 */
async function ensureMaxAge(jsm: JetStreamManager, stream: string, ttlMs: number): Promise<void> {
  const info = await jsm.streams.info(stream);
  const maxAge = nanos(ttlMs);
  if (info.config.max_age === maxAge) return;
  await jsm.streams.update(stream, {
    ...info.config,
    max_age: maxAge,
    duplicate_window: Math.min(info.config.duplicate_window ?? maxAge, maxAge),
  });
}

/** How long a claim's read of one key waits for the stream's leader (TargetStore.leaderReads). */
const CLAIM_READ_TIMEOUT_MS = 1500;

function createBucket(o: TargetStoreOptions): Promise<KV> {
  return replicatedBucket(o.nc, TARGETS_BUCKET, {
    history: o.history ?? 5,
    allow_direct: true,
    replicas: o.replicas,
    onLimitsReset: o.onLimitsReset,
  });
}

function checkTarget(t: NodeTarget): NodeTarget {
  if (!Number.isSafeInteger(t.version) || t.version < 1)
    throw new Error(`target version must be a positive integer, got ${t.version}`);
  if (!Number.isSafeInteger(t.configRevision) || t.configRevision < 0)
    throw new Error(`target configRevision must be >= 0, got ${t.configRevision}`);
  return { version: t.version, configRevision: t.configRevision };
}
