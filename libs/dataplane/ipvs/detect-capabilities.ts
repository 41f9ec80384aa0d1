import { access } from 'node:fs/promises';
import { IpvsClient, LinkClient } from '../../netlink/index.ts';

export interface IpvsCapabilities {
  readonly ipvs: boolean;
  readonly dummy: boolean;
  /** Why a capability is missing, or which scheduler modules are not loaded yet. */
  readonly notes: readonly string[];
}

/**
 * Can this network namespace run ipvs mode? IPVS = the "IPVS" generic-netlink family resolves;
 * dummy = a dummy link can be created (probed with a throwaway device, unless kube-ipvs0 already
 * exists as one). Scheduler modules are only reported: the kernel loads them on first use.
 */
export async function detectIpvsCapabilities(
  opts: { scheduler?: string; device?: string } = {},
): Promise<IpvsCapabilities> {
  const notes: string[] = [];
  let ipvs = false;
  try {
    const c = await IpvsClient.open();
    c.close();
    ipvs = true;
  } catch (e) {
    notes.push(`IPVS unavailable: ${(e as Error).message}`);
  }
  let dummy = false;
  const links = LinkClient.open();
  try {
    const existing = await links.getLink(opts.device ?? 'kube-ipvs0');
    if (existing?.kind === 'dummy') dummy = true;
    else {
      const probe = `sbprobe${process.pid % 100000}`;
      await links.ensureDummy(probe);
      await links.deleteLink(probe);
      dummy = true;
    }
  } catch (e) {
    notes.push(`dummy device unavailable: ${(e as Error).message}`);
  } finally {
    links.close();
  }
  if (ipvs && opts.scheduler) {
    try {
      await access(`/sys/module/ip_vs_${opts.scheduler}`);
    } catch {
      notes.push(`scheduler module ip_vs_${opts.scheduler} not loaded yet (the kernel loads it on first use)`);
    }
  }
  return { ipvs, dummy, notes };
}
