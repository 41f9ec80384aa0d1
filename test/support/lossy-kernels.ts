// Kernel fakes that lose part of one commit without an error: a concurrent writer in the commit
// window, a kernel that normalised something, a runner bug. The dataplane's read-back must catch
// it, and nothing may count the lost part as programmed (review findings F2b, F7).
import { KernelTransaction, type KernelOp, type NftTransaction } from '../../libs/dataplane/index.ts';
import { FakeIpvsKernel } from './fake-ipvs-kernel.ts';
import { FakeNftRunner } from './fake-nft-runner.ts';

/** An IPVS fake that, once armed, silently drops the real-server ops of one virtual server from one run. */
export class LossyIpvsKernel extends FakeIpvsKernel {
  loseRealServersOf: string | undefined;
  override async run(tx: KernelTransaction): Promise<void> {
    const vsAddress = this.loseRealServersOf;
    const lost = (op: KernelOp) => op.kind === 'real-server' && op.vs.address === vsAddress;
    if (vsAddress && tx.ops.some(lost)) {
      this.loseRealServersOf = undefined;
      return super.run(new KernelTransaction().addAll(tx.ops.filter((op) => !lost(op))));
    }
    return super.run(tx);
  }
}

/** An nftables fake that, once armed, commits a transaction but loses the elements naming one address. */
export class LossyNftRunner extends FakeNftRunner {
  loseElementsOf: string | undefined;
  override async run(tx: NftTransaction): Promise<void> {
    const address = this.loseElementsOf;
    const lost = (op: NftTransaction['ops'][number]) =>
      op.object.kind === 'element' && address !== undefined && String(op.object.key).includes(address);
    if (address && tx.ops.some(lost)) {
      this.loseElementsOf = undefined;
      return super.run(Object.create(tx, { ops: { value: tx.ops.filter((op) => !lost(op)) } }) as NftTransaction);
    }
    return super.run(tx);
  }
}
