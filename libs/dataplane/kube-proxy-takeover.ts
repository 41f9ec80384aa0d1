import { spawn } from 'node:child_process';
import type { NodeState } from '../model/index.ts';
import type { ApplyResult, Dataplane } from './dataplane.ts';
import { removeKubeProxyIpvs, snapshotKubeProxyIpvs, type KubeProxyIpvsSnapshot } from './kube-proxy-ipvs-takeover.ts';

/**
 * Moving a node off kube-proxy, make-before-break (docs/migrate-from-kube-proxy.md): the wrapped
 * dataplane programs Switchboard's state first; only after an apply that verified does this remove
 * kube-proxy's state, so every packet is handled by one proxy or the other throughout.
 * Connections that kube-proxy NATed keep their conntrack entries (NAT is bound when a connection
 * starts), so removing its rules does not break them.
 *
 * nftables mode: kube-proxy's nftables mode owns exactly two tables, `ip kube-proxy` and
 * `ip6 kube-proxy`; both are deleted in one atomic `nft -f` transaction. Nothing else is touched.
 * ipvs mode: see kube-proxy-ipvs-takeover.ts (what kube-proxy had and we do not render).
 *
 * Done once per process: kube-proxy must already be stopped on the node (it leaves its rules in
 * place when stopped); a running kube-proxy would put its tables back and the two would fight.
 */
export const KUBE_PROXY_NFT_TABLES = [
  ['ip', 'kube-proxy'],
  ['ip6', 'kube-proxy'],
] as const;

export interface TakeOverOptions {
  /** Run nft inside this network namespace (`ip netns exec NS nft`). */
  readonly netns?: string;
  readonly nftPath?: string;
  readonly log?: (line: string) => void;
}

/** Deletes kube-proxy's nftables tables that exist; returns the ones it deleted ("ip kube-proxy", ...). */
export async function removeKubeProxyNftTables(o: TakeOverOptions = {}): Promise<string[]> {
  const listed = await nft(o, ['list', 'tables']);
  const present = KUBE_PROXY_NFT_TABLES.filter(([fam, name]) => new RegExp(`^table ${fam} ${name}$`, 'm').test(listed));
  if (present.length === 0) return [];
  await nft(o, ['-f', '-'], present.map(([fam, name]) => `delete table ${fam} ${name}\n`).join(''));
  return present.map(([fam, name]) => `${fam} ${name}`);
}

export function withKubeProxyTakeOver(dp: Dataplane, o: TakeOverOptions = {}): Dataplane {
  let done = false;
  let ipvsSnapshot: KubeProxyIpvsSnapshot | undefined;
  let lastState: NodeState | undefined;
  const before = async (): Promise<void> => {
    // kube-proxy's ipvs-mode objects are recognised by what it had before our first apply
    // (that apply rewrites the ipsets that name its NodePorts)
    if (!done && !ipvsSnapshot && dp.mode === 'ipvs' && !o.netns) ipvsSnapshot = await snapshotKubeProxyIpvs();
  };
  const after = async (r: ApplyResult): Promise<ApplyResult> => {
    if (done || !r.verified) return r;
    const t0 = performance.now();
    let notes: string[];
    let wrote = true;
    if (dp.mode === 'ipvs') {
      if (!ipvsSnapshot || !lastState) return r;
      try {
        notes = await removeKubeProxyIpvs(ipvsSnapshot, lastState);
      } catch (e) {
        // not done: the next resync tries again; the node keeps serving our state meanwhile
        return { ...r, verified: false, notes: [...r.notes, `take-over failed: ${(e as Error).message}`] };
      }
    } else if (dp.mode === 'nftables') {
      const removed = await removeKubeProxyNftTables(o);
      wrote = removed.length > 0;
      notes = [
        removed.length
          ? `take-over: removed kube-proxy's tables ${removed.join(', ')}`
          : 'take-over: no kube-proxy tables present',
      ];
    } else {
      return r;
    }
    done = true;
    for (const n of notes) o.log?.(n);
    return {
      ...r,
      kernelWrites: r.kernelWrites + (wrote ? 1 : 0),
      durationMs: r.durationMs + (performance.now() - t0),
      notes: [...r.notes, ...notes],
    };
  };
  return {
    get mode() {
      return dp.mode;
    },
    apply: async (s, change) => {
      await before();
      lastState = s;
      return after(await dp.apply(s, change));
    },
    resync: async () => after(await dp.resync()),
    cleanup: () => dp.cleanup(),
    close: () => dp.close(),
  };
}

function nft(o: TakeOverOptions, args: string[], input?: string): Promise<string> {
  const [cmd, argv] = o.netns
    ? ['ip', ['netns', 'exec', o.netns, o.nftPath ?? 'nft', ...args]]
    : [o.nftPath ?? 'nft', args];
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('error', reject);
    c.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`nft ${args.join(' ')} failed (exit ${String(code)}): ${err.trim().split('\n')[0]}`)),
    );
    // EPIPE from an nft that exits before reading its input is reported by the exit code; an
    // unhandled stream error would crash the process (seen: 'write EPIPE' aborting apply).
    c.stdin.on('error', () => {});
    c.stdin.end(input ?? '');
  });
}
