import { Registry } from 'prom-client';
import { IpvsDataplane } from '../../../../libs/dataplane/ipvs/ipvs-dataplane.ts';
import type { KernelInterface } from '../../../../libs/dataplane/ipvs/kernel-transaction.ts';
import { MemoryOwnershipStore, type OwnershipStore } from '../../../../libs/dataplane/ipvs/ownership-record.ts';
import { FakeIpvsKernel } from '../../../support/fake-ipvs-kernel.ts';

/** An IPVS dataplane over `kernel` (default: the kernel's test double), its record in `store` (default: memory). */
export function dataplaneOverTheTestKernel<K extends KernelInterface = FakeIpvsKernel>(
  kernel: K = new FakeIpvsKernel() as unknown as K,
  store: OwnershipStore = new MemoryOwnershipStore(),
): { kernel: K; dp: IpvsDataplane } {
  const dp = new IpvsDataplane({ kernel, store, kernelRelease: '6.1.0', registry: new Registry() });
  return { kernel, dp };
}
