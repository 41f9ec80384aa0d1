import type { ApplyResult, Dataplane } from './dataplane.ts';
import type { Exec } from './kube-proxy-ipvs-takeover.ts';
import {
  checkedMode,
  competingLeftovers,
  describeLeftovers,
  execIn,
  findKubeProxyLeftovers,
  ipv6GlueChains,
  type Ipv6GlueChains,
  type KubeProxyLeftovers,
} from './kube-proxy-leftovers.ts';

export interface LeftoverCheckOptions {
  /** Run the tools inside this network namespace (`ip netns exec NS ...`). */
  readonly netns?: string;
  /** Tests pass their own; default: the tools on PATH (in `netns` when given). */
  readonly exec?: Exec;
  /** Whether `--take-over-kube-proxy` is on (the message then says kube-proxy came back). */
  readonly takeOver?: boolean;
  readonly log?: (line: string) => void;
  /**
   * Look again at most this often (ms; default 10 000): a resync in between reuses the last finding,
   * so a short --resync-interval does not spawn the five tools every second.
   */
  readonly minCheckIntervalMs?: number;
  /** Told each finding (`apply --once` fails on competing leftovers: it has no resync to report them). */
  readonly onChecked?: (c: { readonly report?: string; readonly competing: boolean }) => void;
}

/** The one-line report of what kube-proxy left, or undefined when it left nothing. */
export function leftoverReport(l: KubeProxyLeftovers, takeOver: boolean): string | undefined {
  const all = describeLeftovers(l);
  if (all.length === 0) return undefined;
  const competing = competingLeftovers(l);
  const what = competing.length
    ? `kube-proxy's rules compete with this node's (${competing.slice(0, 4).join(', ')}${competing.length > 4 ? ` and ${competing.length - 4} more` : ''}: at the same hooks, whichever runs first answers)`
    : "kube-proxy's leftovers, inert (no built-in chain reaches them)";
  const fix = takeOver
    ? 'they came back after the take-over: is kube-proxy still running on this node? stop it, then restart the applier'
    : 'remove them: restart the applier with --take-over-kube-proxy (or run `kube-proxy --cleanup` on the node)';
  return `${what}; found: ${all.join('; ')}; ${fix}`;
}

/**
 * Names kube-proxy's leftovers of any mode (kube-proxy-leftovers.ts) at the first apply and at
 * every resync, so a node never runs beside them silently (probe7 C4, C6). Leftovers that see
 * traffic make the resync fail with the report: the node then reports unhealthy with it (heartbeat
 * `detail`, `ctl status` ERROR "unhealthy: resync: kube-proxy's rules compete ...") until a resync
 * finds them gone; inert ones are logged only. Applies are never failed for them: what we
 * programmed is in the kernel. Wrap it around the take-over (withKubeProxyTakeOver), so what the
 * take-over removes is not reported.
 */
export function withKubeProxyLeftoverCheck(dp: Dataplane, o: LeftoverCheckOptions = {}): Dataplane {
  const exec = o.exec ?? execIn(o.netns);
  let lastLogged: string | undefined;
  let checkedAtStart = false;
  const every = o.minCheckIntervalMs ?? 10_000;
  let last: { at: number; key: string; report?: string; competing: boolean } | undefined;
  // ipvs mode: which of kube-proxy's IPv6 chains are our glue's depends on the state applied
  let ipv6Glue: Ipv6GlueChains | undefined;
  const check = async (): Promise<{ report?: string; competing: boolean }> => {
    // while ipvs mode retires behind nftables, its glue (kube-proxy's ipvs-mode names) is ours
    const mode = checkedMode(dp.draining === 'ipvs' ? 'ipvs' : dp.mode);
    if (!mode) return { competing: false };
    const now = performance.now();
    const key = `${mode} ${JSON.stringify(ipv6Glue)}`;
    if (last && last.key === key && now - last.at < every) return last;
    const found = await findKubeProxyLeftovers(mode, exec, mode === 'ipvs' ? ipv6Glue : undefined);
    const report = leftoverReport(found, !!o.takeOver);
    // said once per change (and once more each resync while it competes, through the resync error)
    if (report !== lastLogged && report) o.log?.(report);
    if (report !== lastLogged && !report && lastLogged) o.log?.("kube-proxy's leftovers are gone");
    lastLogged = report;
    last = { at: now, key, report, competing: competingLeftovers(found).length > 0 };
    o.onChecked?.(last);
    return last;
  };
  return {
    get mode() {
      return dp.mode;
    },
    get draining() {
      return dp.draining;
    },
    apply: async (s, change): Promise<ApplyResult> => {
      const r = await dp.apply(s, change);
      if (r.verified && dp.mode === 'ipvs') ipv6Glue = ipv6GlueChains(s);
      if (checkedAtStart || !r.verified) return r;
      checkedAtStart = true;
      const { report } = await check();
      return report ? { ...r, notes: [...r.notes, report] } : r;
    },
    resync: async (o): Promise<ApplyResult> => {
      // looked at first: a repair then reaches its result (and the caller's log) without this delay,
      // and our repair never touches kube-proxy's objects
      const { report, competing } = await check();
      const r = await dp.resync(o);
      // an unverified resync already reports the node unhealthy, with its own reason
      if (report && competing && r.verified) {
        const repaired =
          r.kernelWrites > 0 ? ` (this resync also repaired drift: ${r.kernelWrites} kernel writes)` : '';
        throw new Error(`${report}${repaired}`);
      }
      return report ? { ...r, notes: [...r.notes, report] } : r;
    },
    cleanup: () => dp.cleanup(),
    close: () => dp.close(),
  };
}
