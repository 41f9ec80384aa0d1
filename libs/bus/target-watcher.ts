import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { contentHash, readProxyConfig, type ConfigRevision, type NodeTarget } from '../model/index.ts';
import { configKey, DEFAULT_TARGET_KEY, nodeTargetKey, targetNoticeSubject, TARGETS_BUCKET } from './subjects.ts';
import { parseNodeTarget, TargetView } from './target-view.ts';

/**
 * Node side of targets, from three sources that all go through TargetView (newest KV revision
 * per key wins, so order and duplicates do not matter):
 *  - core-NATS notices on sb.target.default and sb.target.node.<token> (the fast path; the
 *    TargetStore sends one after each KV write);
 *  - a KV watch of the node's own key (nats-server 2.9 has no multi-key watch; the default key is
 *    not watched, see start());
 *  - a get of both keys at start, after every reconnect and every `refreshMs` (default 30 s), so a
 *    notice lost while disconnected or dropped as a slow consumer delays a node, never strands it.
 */
export class TargetWatcher {
  private readonly view: TargetView;
  private readonly keys: string[];
  private stopped = false;
  private readonly watches: { stop(): void }[] = [];
  private lastEffective = '';
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly kv: KV, node: string, private readonly onChange: (t: NodeTarget) => void, private readonly onError: (e: string) => void) {
    const own = nodeTargetKey(node);
    this.keys = [own, DEFAULT_TARGET_KEY];
    this.view = new TargetView(own);
  }

  static async start(o: { nc: NatsConnection; node: string; onChange: (t: NodeTarget) => void; onError?: (e: string) => void; refreshMs?: number }): Promise<TargetWatcher> {
    const kv = await new Kvm(o.nc).open(TARGETS_BUCKET, { allow_direct: true });
    const w = new TargetWatcher(kv, o.node, o.onChange, o.onError ?? (() => {}));
    for (const k of w.keys) w.followNotices(o.nc, k);
    // Only the node's own key gets a KV watch: it changes rarely (rollouts). The default moves with
    // every data version; a JetStream push to every node's watcher per version costs the server
    // and each applier far more than the core notice (measured: about half the fan-out latency).
    await w.watch(nodeTargetKey(o.node));
    await w.refresh();
    if ((o.refreshMs ?? 30_000) > 0) w.timer = setInterval(() => void w.refresh(), o.refreshMs ?? 30_000);
    return w;
  }

  /** The fast path: core-NATS notices the TargetStore sends after each KV write. */
  private followNotices(nc: NatsConnection, key: string): void {
    const sub = nc.subscribe(targetNoticeSubject(key), {
      callback: (err, m) => {
        if (err) return;
        let n: { revision?: unknown; target?: unknown };
        try {
          n = JSON.parse(m.string()) as typeof n;
        } catch {
          return this.onError(`ignored undecodable target notice on ${m.subject}`);
        }
        if (!Number.isSafeInteger(n.revision) || (n.revision as number) < 1) return this.onError(`ignored target notice without revision on ${m.subject}`);
        const target = n.target === null ? undefined : parseNodeTarget(new TextEncoder().encode(JSON.stringify(n.target)));
        if (n.target !== null && !target) return this.onError(`ignored malformed target notice on ${m.subject}`);
        this.apply(key, n.revision as number, target);
      },
    });
    this.watches.push({ stop: () => sub.unsubscribe() });
  }

  current(): NodeTarget | undefined {
    return this.view.effective();
  }

  /** Re-reads both keys (after a reconnect, or periodically). */
  async refresh(): Promise<void> {
    for (const k of this.keys) {
      try {
        const e = await this.kv.get(k);
        if (e) this.observe(e);
      } catch (err) {
        this.onError(`get ${k}: ${(err as Error).message}`);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const w of this.watches) w.stop();
  }

  async configRevision(rev: number): Promise<ConfigRevision | { error: string }> {
    if (rev === 0) return defaultRevision;
    let e: KvEntry | null;
    try {
      e = await this.kv.get(configKey(rev));
    } catch (err) {
      return { error: `config revision ${rev}: ${(err as Error).message}` };
    }
    if (!e || e.operation !== 'PUT') return { error: `config revision ${rev} is not published` };
    try {
      const r = e.json<ConfigRevision>();
      const config = readProxyConfig(r.config);
      if (r.revision !== rev || contentHash(config) !== r.hash) return { error: `config revision ${rev}: hash mismatch` };
      return { ...r, config };
    } catch (err) {
      return { error: `config revision ${rev}: ${(err as Error).message}` };
    }
  }

  private async watch(key: string): Promise<void> {
    const it = await this.kv.watch({ key });
    this.watches.push(it);
    void (async () => {
      try {
        for await (const e of it) this.observe(e);
      } catch (err) {
        this.onError(`watch ${key}: ${(err as Error).message}`);
      }
      // the iterator ended without stop(): start a new one (and re-read, in case we missed a put)
      if (!this.stopped) {
        try {
          await this.watch(key);
          await this.refresh();
        } catch (err) {
          this.onError(`rewatch ${key}: ${(err as Error).message}`);
        }
      }
    })();
  }

  private observe(e: KvEntry): void {
    const t = e.operation === 'PUT' ? parseNodeTarget(e.value) : undefined;
    if (e.operation === 'PUT' && !t) {
      // a corrupt entry must not move the node (not even back to the default): ignore it
      this.onError(`ignored malformed target in ${e.key} (revision ${e.revision})`);
      return;
    }
    this.apply(e.key, e.revision, e.operation === 'PUT' ? t : undefined);
  }

  private apply(key: string, revision: number, t: NodeTarget | undefined): void {
    if (!this.view.observe(key, revision, t)) return;
    const eff = this.view.effective();
    const s = eff ? `${eff.version}/${eff.configRevision}` : '';
    if (eff && s !== this.lastEffective) {
      this.lastEffective = s;
      this.onChange(eff);
    }
  }
}

/** Revision 0 is the built-in default config, so a cluster runs before any config is published. */
const defaultRevision: ConfigRevision = (() => {
  const config = readProxyConfig(undefined);
  return { revision: 0, config, hash: contentHash(config), reason: 'built-in default', createdAt: '1970-01-01T00:00:00.000Z' };
})();
