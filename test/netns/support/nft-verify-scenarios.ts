// Runs inside a netns (TestNetns.run): a netlink NftablesDataplane with verifyAfterApply on,
// whose runner lets the test damage the table right after a transaction commits (as another
// program could), before the dataplane's verify reads back what that transaction touched.
import { execFileSync } from 'node:child_process';
import {
  NftablesDataplane,
  NftNetlinkRunner,
  type NftReadScope,
  type NftRunner,
  type NftTransaction,
} from '../../../libs/dataplane/index.ts';
import type { NftReadBack } from '../../../libs/dataplane/index.ts';
import { nodeState } from './node-state-builder.ts';

export interface VerifyStep {
  step: string;
  verified: boolean;
  writes: number;
  notes: string[];
  /** What the apply's verify read: 'whole table', 'nothing', or the scope's sizes. */
  read: string;
}

const TABLE = 'sbverify';
const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });
const list = () => nft('list', 'table', 'inet', TABLE);

/** NftNetlinkRunner with a one-shot hook run right after a commit, and a log of read scopes. */
class DamagingRunner implements NftRunner {
  readonly backend = 'netlink';
  damage: (() => void) | undefined;
  readonly reads: (NftReadScope | undefined)[] = [];
  constructor(private readonly inner: NftNetlinkRunner) {}
  async run(tx: NftTransaction): Promise<void> {
    await this.inner.run(tx);
    const d = this.damage;
    this.damage = undefined;
    d?.();
  }
  listTable(family: string, table: string, scope?: NftReadScope): Promise<NftReadBack | undefined> {
    this.reads.push(scope);
    return this.inner.listTable(family, table, scope);
  }
  generation(): Promise<number> {
    return this.inner.generation();
  }
  get lastCommits(): number {
    return this.inner.lastCommits;
  }
  close(): void {
    this.inner.close();
  }
}

const state = (a2: string, b: string) =>
  nodeState([
    { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080', `${a2}:8080`] },
    { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, persistenceTimeout: 60, endpoints: [`${b}:8080`] },
  ]);

export async function verifyCatchesDamage(): Promise<VerifyStep[]> {
  const runner = new DamagingRunner(new NftNetlinkRunner());
  const dp = new NftablesDataplane({ runner, table: TABLE });
  const out: VerifyStep[] = [];
  const step = async (name: string, s: ReturnType<typeof state>, damage?: () => void) => {
    runner.damage = damage;
    const before = runner.reads.length;
    const r = await dp.apply(s);
    const reads = runner.reads.slice(before);
    const read =
      reads.length === 0
        ? 'nothing'
        : reads
            .map((x) =>
              x === undefined
                ? 'whole table'
                : `${x.chains.length} chains, ${x.sets.length} sets, ${x.elements.length} elements`,
            )
            .join(' + ');
    out.push({ step: name, verified: r.verified, writes: r.kernelWrites, notes: [...r.notes], read });
  };
  const resync = async (name: string) => {
    const r = await dp.resync();
    out.push({ step: name, verified: r.verified, writes: r.kernelWrites, notes: [...r.notes], read: 'resync' });
  };
  const endpointMap = () => /map (endpoints-\S+ns\/a\/p\/tcp) \{/.exec(list())?.[1] ?? 'missing';
  try {
    await step('initial load', state('10.1.0.2', '10.1.0.3'));
    await step('endpoint change, its map slot rewritten behind our back', state('10.1.0.4', '10.1.0.3'), () => {
      const map = endpointMap();
      nft('delete', 'element', 'inet', TABLE, map, '{ 32768-65535 }');
      nft('add', 'element', 'inet', TABLE, map, '{ 32768-65535 : 10.9.9.9 . 8080 }');
    });
    await resync('resync repairs it');
    await step('endpoint change, its new hairpin entry deleted', state('10.1.0.7', '10.1.0.3'), () =>
      nft('delete', 'element', 'inet', TABLE, 'hairpin', '{ 10.1.0.7 . 10.1.0.7 }'),
    );
    await resync('resync repairs that');
    await step('affinity endpoint change, its new endpoint chain flushed', state('10.1.0.7', '10.1.0.8'), () => {
      const chain = /chain (endpoint-\S*10\.1\.0\.8\S*) \{/.exec(list())?.[1] ?? 'missing';
      nft('flush', 'chain', 'inet', TABLE, chain);
    });
    await resync('resync repairs the chain');
    await step('endpoint change, an untouched service-ips entry deleted', state('10.1.0.9', '10.1.0.8'), () =>
      nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.2 . tcp . 80 }'),
    );
    await resync('the generation moved: resync reads all and repairs');
    await step('no-op apply', state('10.1.0.9', '10.1.0.8'));
    await dp.cleanup();
    return out;
  } finally {
    await dp.close();
  }
}
