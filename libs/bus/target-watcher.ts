import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { contentHash, readProxyConfig, type ConfigRevision, type NodeTarget } from '../model/index.ts';
import { configKey, DEFAULT_TARGET_KEY, nodeTargetKey, TARGETS_BUCKET } from './subjects.ts';
import { parseNodeTarget, TargetView } from './target-view.ts';

/**
 * Node side of targets. nats-server 2.9 has no multi-key watch, so two ordered watches (own key,
 * default), plus a get of both keys at start, on every reconnect and on `refresh()`: a watch that
 * died with the server never leaves the node on an old target. Entries from all sources go through
 * TargetView, which keeps the newest KV revision per key.
 */
export class TargetWatcher {
  private readonly view: TargetView;
  private readonly keys: string[];
  private stopped = false;
  private readonly watches: { stop(): void }[] = [];
  private lastEffective = '';

  private constructor(private readonly kv: KV, node: string, private readonly onChange: (t: NodeTarget) => void, private readonly onError: (e: string) => void) {
    const own = nodeTargetKey(node);
    this.keys = [own, DEFAULT_TARGET_KEY];
    this.view = new TargetView(own);
  }

  static async start(o: { nc: NatsConnection; node: string; onChange: (t: NodeTarget) => void; onError?: (e: string) => void }): Promise<TargetWatcher> {
    const kv = await new Kvm(o.nc).open(TARGETS_BUCKET, { allow_direct: true });
    const w = new TargetWatcher(kv, o.node, o.onChange, o.onError ?? (() => {}));
    for (const k of w.keys) await w.watch(k);
    await w.refresh();
    return w;
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
    if (!this.view.observe(e.key, e.revision, e.operation === 'PUT' ? t : undefined)) return;
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
