import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { contentHash, type ConfigRevision, type NodeTarget } from '../model/index.ts';
import { configKey, DEFAULT_TARGET_KEY, nodeTargetKey, targetNoticeSubject, TARGETS_BUCKET } from './subjects.ts';
import { parseNodeTarget } from './target-view.ts';

export interface Targets {
  readonly default: NodeTarget | undefined;
  /** Per-node overrides, keyed by node token (node name with '.' as '_'). */
  readonly nodes: ReadonlyMap<string, NodeTarget>;
}

/**
 * Planner side of targets: the KV bucket sb_targets holds `default` and `node.<token>` overrides
 * (NodeTarget JSON) plus `config.<rev>` (ConfigRevision JSON, written once, before any target names
 * it). Appliers only read it; the server config denies them every write.
 */
export class TargetStore {
  private constructor(private readonly nc: NatsConnection, private readonly kv: KV) {}

  static async open(o: { nc: NatsConnection; history?: number }): Promise<TargetStore> {
    const kv = await new Kvm(o.nc).create(TARGETS_BUCKET, { history: o.history ?? 5, allow_direct: true });
    return new TargetStore(o.nc, kv);
  }

  async setDefaultTarget(t: NodeTarget): Promise<number> {
    return this.write(DEFAULT_TARGET_KEY, checkTarget(t));
  }

  async setNodeTarget(node: string, t: NodeTarget): Promise<number> {
    return this.write(nodeTargetKey(node), checkTarget(t));
  }

  async clearNodeTarget(node: string): Promise<void> {
    await this.write(nodeTargetKey(node), undefined);
  }

  /**
   * KV first (the durable truth, read at start and after reconnects), then a core-NATS notice with
   * the KV revision: appliers act on the notice at once instead of waiting for a JetStream push
   * to every watcher, and order notices and KV entries by that revision.
   */
  private async write(key: string, t: NodeTarget | undefined): Promise<number> {
    let revision: number;
    if (t) {
      revision = await this.kv.put(key, JSON.stringify(t));
    } else {
      await this.kv.delete(key);
      revision = (await this.kv.get(key))?.revision ?? 0;
    }
    this.nc.publish(targetNoticeSubject(key), JSON.stringify({ revision, target: t ?? null }));
    return revision;
  }

  async getTargets(): Promise<Targets> {
    const d = await this.kv.get(DEFAULT_TARGET_KEY);
    const nodes = new Map<string, NodeTarget>();
    const keys = await this.kv.keys('node.>');
    for await (const k of keys) {
      const e = await this.kv.get(k);
      const t = e && e.operation === 'PUT' ? parseNodeTarget(e.value) : undefined;
      if (t) nodes.set(k.slice('node.'.length), t);
    }
    return { default: d && d.operation === 'PUT' ? parseNodeTarget(d.value) : undefined, nodes };
  }

  /** Publishes a config revision; its hash must be contentHash(config). Idempotent for equal content. */
  async putConfigRevision(r: ConfigRevision): Promise<void> {
    if (r.hash !== contentHash(r.config)) throw new Error(`config revision ${r.revision}: hash is not contentHash(config)`);
    const existing = await this.kv.get(configKey(r.revision));
    if (existing && existing.operation === 'PUT') {
      const prev = existing.json<ConfigRevision>();
      if (prev.hash !== r.hash) throw new Error(`config revision ${r.revision} already exists with another hash`);
      return;
    }
    await this.kv.put(configKey(r.revision), JSON.stringify(r));
  }

  async getConfigRevision(rev: number): Promise<ConfigRevision | undefined> {
    const e = await this.kv.get(configKey(rev));
    return e && e.operation === 'PUT' ? e.json<ConfigRevision>() : undefined;
  }
}

function checkTarget(t: NodeTarget): NodeTarget {
  if (!Number.isSafeInteger(t.version) || t.version < 1) throw new Error(`target version must be a positive integer, got ${t.version}`);
  if (!Number.isSafeInteger(t.configRevision) || t.configRevision < 0) throw new Error(`target configRevision must be >= 0, got ${t.configRevision}`);
  return { version: t.version, configRevision: t.configRevision };
}
