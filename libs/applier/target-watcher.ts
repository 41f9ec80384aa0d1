import type { NatsConnection } from '@nats-io/transport-node';
import {
  checkWire,
  ConfigRevisionSchema,
  contentHash,
  parseWire,
  readProxyConfig,
  SignedTargetSchema,
  TargetNoticeSchema,
  type ConfigRevision,
  type NodeTarget,
  type NoticeDelta,
  type SignedTarget,
  type TargetNotice,
} from '../model/index.ts';
import {
  configKey,
  configStatement,
  DEFAULT_TARGET_KEY,
  directGet,
  kvSubject,
  nodeTargetKey,
  targetNoticeStatement,
  targetPatchStatement,
  targetNoticeSubject,
  TARGETS_BUCKET,
  TARGETS_STREAM,
  type Verifier,
} from '../bus/index.ts';
import { signedTargetFault, TargetView } from './target-view.ts';

export interface TargetWatcherOptions {
  readonly nc: NatsConnection;
  readonly node: string;
  readonly onChange: (t: NodeTarget) => void;
  /**
   * A newer entry (a later `issued`) naming the target already followed: a planner that started,
   * took over, or republished after NATS lost its store writes every target again. Its version N
   * may be other content than the N this node holds (a restored log, a stream made again: probe13
   * R1), so the node checks what it holds against the stream.
   */
  readonly onReissue?: (t: NodeTarget) => void;
  /**
   * A delta carried by a notice; called before the notice's target is taken. `signed`: the
   * notice's one signature over target and delta verified, so the delta's own need not be checked;
   * otherwise it is unverified here.
   */
  readonly onDelta?: (d: NoticeDelta, where: string, signed: boolean) => void;
  /**
   * The version as patches, carried by a notice instead of its delta; `signed` as for onDelta
   * (a patch has no signature of its own: unsigned with a verifier, it must be dropped).
   */
  readonly onPatch?: (p: NoticeDelta, where: string, signed: boolean) => void;
  readonly onError?: (e: string) => void;
  /** A message dropped as unsigned, badly signed or malformed (counted in a metric). */
  readonly onRejected?: (what: string, reason: string) => void;
  /** Period of the safety re-read of both keys (ms; 0 = never). Default 30 000. */
  readonly refreshMs?: number;
  /** The planner's public key; without it entries are taken unverified. */
  readonly verifier?: Verifier;
  readonly timeoutMs?: number;
  /**
   * The `issued` of each key the previous process of this node followed (TargetView): an older
   * entry is refused (a replayed old target), said once per entry through onRefused.
   */
  readonly followedBefore?: Readonly<Record<string, number>>;
  /** A signed but old target refused (see followedBefore); once per entry. */
  readonly onRefused?: (where: string, reason: string) => void;
}

/**
 * Node side of targets, from two sources that both go through TargetView (newest signed
 * `issued` per key wins, so order and duplicates do not matter):
 *  - core-NATS notices on sb.target.default and sb.target.node.<token> (the fast path; the
 *    TargetStore sends one after each KV write; the default's carries the version's delta);
 *  - a direct get of both keys at start, after every reconnect and every `refreshMs`, and every
 *    few hundred ms (capped backoff) while the bucket or a target does not exist yet, so a node
 *    started before the planner, or a notice lost while disconnected, delays a node, never
 *    strands it.
 * No KV watch: a watch needs a consumer, and a node allowed to create consumers can make the
 * server deliver into any subject, the versions stream's included.
 */
export class TargetWatcher {
  private readonly view: TargetView;
  private readonly keys: string[];
  private stopped = false;
  private readonly subs: { unsubscribe(): void }[] = [];
  private lastEffective = '';
  private timer: NodeJS.Timeout | undefined;
  private waiting: string | undefined = 'the first read of the targets bucket';
  private pollMs = 250;
  /**
   * Why the last target offered failed its signature, until one passes: a planner key other than
   * --planner-key (a new --signing-key, a rotation) drops every target, and the node must say so
   * (heartbeat, /healthz) rather than look healthy while it runs nothing new (probe3 U3).
   */
  private distrust: string | undefined;
  /** Why a key's newest entry is refused as older than followed before the restart (undefined once one is taken). */
  private refusal: string | undefined;
  /** The refusals said already (key and issued), so a poll re-reading the same entry says nothing new. */
  private readonly said = new Set<string>();

  private constructor(private readonly options: TargetWatcherOptions) {
    const own = nodeTargetKey(options.node);
    this.keys = [own, DEFAULT_TARGET_KEY];
    this.view = new TargetView(own, options.followedBefore);
  }

  /** Never fails for a missing bucket or target: it waits for them (see waitingFor()). */
  static async start(o: TargetWatcherOptions): Promise<TargetWatcher> {
    const w = new TargetWatcher(o);
    for (const k of w.keys) w.followNotices(k);
    await o.nc.flush();
    // not awaited: a bucket that does not exist yet answers nothing (a timeout), and start must not wait on it
    void w.refresh().finally(() => w.schedule());
    return w;
  }

  current(): NodeTarget | undefined {
    return this.view.effective();
  }

  /** What the node still waits for before it has a target (undefined once it has one). */
  waitingFor(): string | undefined {
    if (this.current()) return undefined;
    if (this.distrust) return 'a target signed with --planner-key';
    return this.refusal ? 'a target not older than the one followed before this restart' : this.waiting;
  }

  /** Set while the targets offered are dropped for their signature or age (undefined once one passes). */
  dropping(): string | undefined {
    return this.distrust ?? this.refusal;
  }

  /** The `issued` of each key followed now: persisted with the ACK, the floor of the next process. */
  followed(): Record<string, number> {
    return this.view.followed();
  }

  private schedule(): void {
    if (this.stopped) return;
    const every = this.options.refreshMs ?? 30_000;
    const wait = this.current() ? every : Math.min(this.pollMs, every > 0 ? every : 5000);
    if (wait <= 0) return;
    this.pollMs = Math.min(this.pollMs * 2, 5000);
    this.timer = setTimeout(() => void this.refresh().finally(() => this.schedule()), wait);
  }

  private followNotices(key: string): void {
    const subject = targetNoticeSubject(key);
    const sub = this.options.nc.subscribe(subject, {
      callback: (err, m) => {
        if (err) return;
        const n = parseWire(TargetNoticeSchema, m.data, `target notice on ${subject}`);
        if ('error' in n) return this.reject(subject, n.error);
        const { target, delta, patch } = n.value;
        const signed = (delta !== undefined || patch !== undefined) && this.signedTogether(key, n.value);
        if (delta) this.options.onDelta?.(delta, subject, signed);
        else if (patch) this.options.onPatch?.(patch, subject, signed);
        this.offer(key, target, subject, signed);
      },
    });
    this.subs.push(sub);
  }

  /**
   * Re-reads both keys (at start, after a reconnect, periodically). Both reads are sent at once, so
   * a re-read nothing answers ends after one read timeout, not one per key (they were read one
   * after the other: 2 × 2 s after each reconnect while a reply inbox was refused, probe19 P19-1).
   * The answers are taken in key order (the node's own, then the default) whatever order they come
   * in, as before: the last failure says what the node waits for, and each failure is said.
   */
  async refresh(): Promise<void> {
    const timeout = this.options.timeoutMs ?? 2000;
    const reads = await Promise.all(
      this.keys.map((k) => directGet(this.options.nc, TARGETS_STREAM, { last: kvSubject(k) }, timeout)),
    );
    if (this.stopped) return;
    for (const [i, k] of this.keys.entries()) {
      const m = reads[i]!;
      if (!m.ok) {
        if (m.absentStream) this.waiting = `targets bucket ${TARGETS_BUCKET} (no planner has run on this NATS yet)`;
        else if (m.missing) this.waiting = 'a target (the planner has not published one yet)';
        else if (/timeout/i.test(m.error))
          this.waiting = `targets bucket ${TARGETS_BUCKET} (no answer: not created yet, or NATS is slow)`;
        else {
          this.waiting = `targets bucket ${TARGETS_BUCKET}: ${m.error}`;
          this.options.onError?.(`get ${k}: ${m.error}`);
        }
        continue;
      }
      const op = m.header('KV-Operation');
      if (op === 'DEL' || op === 'PURGE') continue; // the planner never deletes: nothing to follow
      const e = parseWire(SignedTargetSchema, m.data, `target ${k}`);
      if ('error' in e) this.reject(k, e.error);
      else this.offer(k, e.value, k);
    }
  }

  /**
   * Whether the notice's one signature over its target and delta verifies (planners before it
   * send none). When it does not, nothing is lost: each part is then checked on its own signature.
   */
  private signedTogether(key: string, n: TargetNotice): boolean {
    const v = this.options.verifier;
    if (!v || !n.sig || !(n.delta || n.patch)) return false;
    const statement = n.delta
      ? targetNoticeStatement(key, n.target, n.delta)
      : targetPatchStatement(key, n.target, n.patch!);
    if (statement && v.verify(statement, n.sig)) return true;
    this.options.onRejected?.(
      targetNoticeSubject(key),
      `bad notice signature (target checked on its own; ${n.delta ? 'delta checked on its own' : 'patch dropped'})`,
    );
    return false;
  }

  /** `signed`: the entry is covered by a notice signature verified already. */
  private offer(key: string, entry: SignedTarget, where: string, signed = false): void {
    const fault = signed ? undefined : signedTargetFault(key, entry, this.options.verifier);
    if (fault) {
      this.distrust =
        fault === 'unsigned'
          ? 'dropping targets: unsigned (does the planner run without --signing-key? this node has --planner-key)'
          : `dropping targets: ${fault} (is --planner-key the planner's key?)`;
      return this.reject(where, `${fault} target`);
    }
    this.distrust = undefined;
    const seen = this.view.observe(key, entry);
    if (typeof seen === 'object') {
      this.refusal = `refusing targets: ${seen.refused}`;
      const id = `${key}@${entry.issued}`;
      if (!this.said.has(id)) {
        this.said.add(id);
        this.options.onRefused?.(where, seen.refused);
      }
      return;
    }
    if (seen !== 'newer') return;
    if (!this.view.refusing()) this.refusal = undefined;
    const eff = this.view.effective();
    const s = eff ? `${eff.version}/${eff.configRevision}` : '';
    if (eff && s !== this.lastEffective) {
      this.lastEffective = s;
      this.options.onChange(eff);
    } else if (eff) this.options.onReissue?.(eff);
  }

  /** One report per dropped message: the rejection, else (no onRejected) an error (probe10 H12: both, logged twice). */
  private reject(where: string, reason: string): void {
    if (this.options.onRejected) this.options.onRejected(where, reason);
    else this.options.onError?.(`ignored ${reason} (${where})`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.subs) s.unsubscribe();
  }

  async configRevision(rev: number): Promise<ConfigRevision | { error: string }> {
    if (rev === 0) return defaultRevision;
    const key = configKey(rev);
    const m = await directGet(
      this.options.nc,
      TARGETS_STREAM,
      { last: kvSubject(key) },
      this.options.timeoutMs ?? 5000,
    );
    if (!m.ok)
      return { error: m.missing ? `config revision ${rev} is not published` : `config revision ${rev}: ${m.error}` };
    if (m.header('KV-Operation') === 'DEL' || m.header('KV-Operation') === 'PURGE')
      return { error: `config revision ${rev} is not published` };
    const r = parseWire(ConfigRevisionSchema, m.data, `config revision ${rev}`);
    if ('error' in r) return r;
    if (r.value.revision !== rev || contentHash(r.value.config) !== r.value.hash)
      return { error: `config revision ${rev}: hash mismatch` };
    const v = this.options.verifier;
    if (v && !(r.value.sig && v.verify(configStatement(rev, r.value.hash), r.value.sig))) {
      this.options.onRejected?.(key, 'unsigned or badly signed config revision');
      return { error: `config revision ${rev}: not signed by the planner` };
    }
    return r.value;
  }
}

/** Revision 0 is the built-in default config, so a cluster runs before any config is published. */
const defaultRevision: ConfigRevision = (() => {
  const config = readProxyConfig(undefined);
  const r = checkWire(
    ConfigRevisionSchema,
    {
      revision: 0,
      config,
      hash: contentHash(config),
      reason: 'built-in default',
      createdAt: '1970-01-01T00:00:00.000Z',
    },
    'default',
  );
  if ('error' in r) throw new Error(r.error);
  return r.value;
})();
