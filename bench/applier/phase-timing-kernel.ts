// A KernelInterface wrapper for the ipvs bench: times every read, point read and transaction,
// running each transaction as its consecutive (kind, verb) groups so the time of each group is
// known. The inner kernel runs those groups sequentially anyway (NetlinkKernel.run), so the
// split changes nothing but the bookkeeping.
import {
  KernelTransaction,
  type KernelInterface,
  type KernelOp,
  type ObservedKernel,
  type ObservedVirtualServer,
  type VsKey,
} from '../../libs/dataplane/index.ts';
import { markKernelCall } from './socket-trace.ts';

export class PhaseTimingKernel implements KernelInterface {
  /** phase name → total ms since the last take(). */
  private phases = new Map<string, number>();

  constructor(private readonly inner: KernelInterface) {}

  /** The phases timed since the last call, rounded to ms, in the order first seen. */
  take(): Record<string, number> {
    const out = Object.fromEntries([...this.phases].map(([k, v]) => [k, Math.round(v)]));
    this.phases = new Map();
    return out;
  }

  async read(opts: Parameters<KernelInterface['read']>[0], signal?: AbortSignal): Promise<ObservedKernel> {
    return this.timed('read', () => this.inner.read(opts, signal));
  }

  async readVirtualServers(keys: readonly VsKey[]): Promise<ObservedVirtualServer[]> {
    return this.timed('readVirtualServers', () => this.inner.readVirtualServers(keys));
  }

  async run(tx: KernelTransaction): Promise<void> {
    let group: KernelOp[] = [];
    const flush = async () => {
      if (group.length === 0) return;
      const ops = group;
      group = [];
      await this.timed(`run ${ops[0]!.kind}:${ops[0]!.verb}`, () =>
        this.inner.run(new KernelTransaction().addAll(ops)),
      );
    };
    for (const op of tx.ops) {
      const g = group[0];
      if (g && (g.kind !== op.kind || g.verb !== op.verb)) await flush();
      group.push(op);
    }
    await flush();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async timed<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    const t = performance.now();
    const end = markKernelCall();
    try {
      return await fn();
    } finally {
      end();
      this.phases.set(phase, (this.phases.get(phase) ?? 0) + performance.now() - t);
    }
  }
}
