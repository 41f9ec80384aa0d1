// Runs inside a netns (TestNetns.run): a netlink NftablesDataplane whose resync, after the
// ruleset generation moved, reads back only what nf_tables' notifications named, against changes
// the `nft` binary makes in the same netns — to other tables, to our table's chains, per-group
// maps, skeleton map elements, with anonymous sets, the table itself — and against lost
// notifications (a monitor socket made to overflow), a restarted applier and the periodic
// whole read. Each step records which read the resync made and whether the table is again
// exactly what the first apply loaded.
import { execFileSync } from 'node:child_process';
import { NftablesDataplane, NftNetlinkRunner } from '../../../libs/dataplane/index.ts';
import type { ApplyResult } from '../../../libs/dataplane/index.ts';
import { nodeState } from './node-state-builder.ts';

export interface NotifiedStep {
  step: string;
  /** `skipped` (generation unchanged), `none` (notifications: nothing of ours), `scoped`, `whole`. */
  read: 'skipped' | 'none' | 'scoped' | 'whole';
  /** What a scoped read covered, from its note (`1 chains, 0 sets, 0 elements`). */
  scope?: string;
  /** The reason a whole read gives, when it names one. */
  why?: string;
  writes: number;
  verified: boolean;
  /** `nft list table` is, line for line, what it was after the first apply. */
  tableAsLoaded: boolean;
}

const TABLE = 'sbnote';
const nft = (...args: string[]): string => execFileSync('nft', args, { encoding: 'utf8' });
const nftScript = (text: string): string => execFileSync('nft', ['-f', '-'], { input: text, encoding: 'utf8' });
/** Removes the other table if a step left it (`destroy` is not in nft 1.0.6). */
const dropOther = () => {
  if (nft('list', 'tables').includes(`${TABLE}-other`)) nft('delete', 'table', 'inet', `${TABLE}-other`);
};
const listing = () => nft('list', 'table', 'inet', TABLE).split('\n').sort().join('\n');
const state = nodeState(
  [
    { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080', '10.1.0.2:8080'] },
    { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, persistenceTimeout: 60, endpoints: ['10.1.0.3:8080'] },
  ],
  { clusterCIDR: '10.0.0.0/8' }, // a masquerade rule in each service chain
);

function readOf(r: ApplyResult): Pick<NotifiedStep, 'read' | 'scope' | 'why'> {
  const n = r.notes.join(' | ');
  if (n.includes('unchanged since verified: no read-back')) return { read: 'skipped' };
  if (n.includes('none to our table')) return { read: 'none' };
  const scoped = /read back what notifications named \(([^)]*)\)/.exec(n);
  if (scoped) return { read: 'scoped', scope: scoped[1] };
  const why = /whole read: ([^|]*)/.exec(n)?.[1]?.trim();
  return why ? { read: 'whole', why } : { read: 'whole' };
}

/**
 * Records each step's apply or resync: what `describe` makes of it, its writes, whether it
 * verified, and whether `nft list table` is again what `baseline()` says the load left.
 */
function stepRecorder<S extends { step: string; writes: number; verified: boolean; tableAsLoaded: boolean }>(
  out: S[],
  baseline: () => string,
  describe: (r: ApplyResult) => Omit<S, 'step' | 'writes' | 'verified' | 'tableAsLoaded'>,
): (step: string, r: Promise<ApplyResult>) => Promise<void> {
  return async (step, r) => {
    const res = await r;
    const row = { step, ...describe(res), writes: res.kernelWrites, verified: res.verified };
    out.push({ ...row, tableAsLoaded: listing() === baseline() } as S);
  };
}

/** Name of the first object of `kind` (`chain`, `map`) in our table whose name starts with `prefix`. */
function objectName(kind: string, prefix: string): string {
  const m = new RegExp(`${kind} (${prefix}\\S*) \\{`).exec(nft('list', 'table', 'inet', TABLE));
  if (!m) throw new Error(`no ${kind} ${prefix}… in the table`);
  return m[1]!;
}

export async function notifiedResyncs(): Promise<NotifiedStep[]> {
  let clock = 0;
  const runner = new NftNetlinkRunner();
  const dp = new NftablesDataplane({ runner, table: TABLE, clock: () => clock, wholeReadEveryMs: 60_000 });
  const out: NotifiedStep[] = [];
  let loaded = '';
  const record = stepRecorder(out, () => loaded, readOf);
  try {
    await dp.apply(state);
    loaded = listing();
    await record('nothing committed', dp.resync());
    nft('add', 'table', 'inet', `${TABLE}-other`);
    await record('another table added', dp.resync());
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('a service-ips element deleted', dp.resync());
    const endpointMap = objectName('map', 'endpoints-');
    nft('delete', 'element', 'inet', TABLE, endpointMap, '{ 0-32767 }');
    await record('an endpoint map slot deleted', dp.resync());
    const serviceChain = objectName('chain', 'service-[A-Z0-9]*-ns/a');
    nft('flush', 'chain', 'inet', TABLE, serviceChain);
    await record('a service chain flushed', dp.resync());
    // A changed match keeps the chain's digest (rule count, jumps, DNAT destinations): only the
    // notification says it was written.
    const masq = /(ip daddr 10\.96\.0\.1 tcp dport 80 .*jump mark-for-masquerade) # handle (\d+)/.exec(
      nft('-a', 'list', 'chain', 'inet', TABLE, serviceChain),
    );
    if (!masq) throw new Error('no masquerade rule in the service chain');
    nft(
      'replace',
      'rule',
      'inet',
      TABLE,
      serviceChain,
      'handle',
      masq[2]!,
      'ip daddr 10.96.0.1 tcp dport 80 ip saddr 10.99.0.0/16 jump mark-for-masquerade',
    );
    await record('a rule match replaced, digest unchanged', dp.resync());
    // A rename's NEWCHAIN names only the new chain: read as one chain, the old name would be
    // assumed present.
    nft('rename', 'chain', 'inet', TABLE, serviceChain, 'renamed-by-someone');
    await record('one of our chains renamed', dp.resync());
    nft('add', 'chain', 'inet', TABLE, 'intruder');
    await record('a foreign chain added to our table', dp.resync());
    nft('add', 'chain', 'inet', TABLE, 'intruder2');
    nft('add', 'rule', 'inet', TABLE, 'intruder2', 'ip daddr { 10.9.9.1, 10.9.9.2 } drop');
    await record('a rule with an anonymous set added', dp.resync());
    await record('nothing committed since', dp.resync());
    clock += 61_000;
    nft('delete', 'table', 'inet', `${TABLE}-other`);
    await record('another table deleted, whole read due', dp.resync());
    nft('delete', 'table', 'inet', TABLE);
    await record('our table deleted', dp.resync());
    loaded = listing(); // a reload: same content, new handles
    await record('after the reload', dp.resync());
    return out;
  } finally {
    await dp.cleanup().catch(() => undefined);
    await dp.close();
    dropOther();
  }
}

/**
 * Notifications lost: the monitor socket gets a receive buffer too small for one burst of
 * another program's commit, so the kernel drops notifications and reports ENOBUFS; an element
 * of ours deleted in the same burst must still be repaired, by a whole read. Then a restarted
 * applier (a new runner and dataplane adopting the table) records from its adoption on.
 */
export async function lostNotificationsAndRestart(): Promise<NotifiedStep[]> {
  const out: NotifiedStep[] = [];
  let loaded = '';
  const record = stepRecorder(out, () => loaded, readOf);
  const small = new NftNetlinkRunner({ monitorRecvBufferSize: 4096 });
  const dp = new NftablesDataplane({ runner: small, table: TABLE });
  let restarted: NftablesDataplane | undefined;
  try {
    await dp.apply(state);
    loaded = listing();
    // The first apply's read started the listener; this resync confirms nothing moved.
    const first = await dp.resync();
    if (first.kernelWrites !== 0) throw new Error(`first resync wrote: ${first.notes}`);
    // The listener is stopped (SIGSTOP) during the burst: its 4 KiB socket then overflows for
    // sure. A running one could keep up with the kernel (it did on a loaded CI machine, coalesced
    // element notifications read as fast as they came), and the step would be a scoped read.
    const listenerPid = small.notificationListenerPid;
    if (listenerPid === undefined) throw new Error('the first apply started no notification listener');
    const elements = Array.from(
      { length: 20_000 },
      (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    ).join(', ');
    process.kill(listenerPid, 'SIGSTOP');
    try {
      nftScript(
        [
          `table inet ${TABLE}-other {\n set s {\n type ipv4_addr\n elements = { ${elements} }\n }\n}`,
          `delete element inet ${TABLE} service-ips { 10.96.0.2 . tcp . 80 }`,
        ].join('\n'),
      );
    } finally {
      process.kill(listenerPid, 'SIGCONT');
    }
    await record('notifications overflowed', dp.resync());
    nft('add', 'chain', 'inet', `${TABLE}-other`, 'c');
    await record('another table changed after the overflow', dp.resync());
    await dp.close();
    // A restarted applier: a new runner (no record of earlier commits) adopts the table.
    restarted = new NftablesDataplane({ runner: new NftNetlinkRunner(), table: TABLE });
    const adopt = await restarted.apply(state);
    out.push({
      step: 'restarted applier adopts',
      read: adopt.notes.includes('adopted existing table') ? 'whole' : 'none',
      writes: adopt.kernelWrites,
      verified: adopt.verified,
      tableAsLoaded: listing() === loaded,
    });
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('after the restart, an element deleted', restarted.resync());
    return out;
  } finally {
    await (restarted ?? dp).cleanup().catch(() => undefined);
    await restarted?.close();
    await dp.close();
    dropOther();
  }
}

export interface ListenerStep {
  step: string;
  notes: readonly string[];
  writes: number;
  verified: boolean;
  tableAsLoaded: boolean;
}

/**
 * The listener child cannot start (`execPath`: a missing binary, or one that exits before it
 * joins the group): applies still succeed and verify, with a note saying why; a resync after
 * another program's change reads the whole table and repairs it; the start is retried once the
 * retry delay passed, not on every call.
 */
export async function listenerCannotStart(execPath: string): Promise<ListenerStep[]> {
  let clock = 0;
  const runner = new NftNetlinkRunner({ monitorExecPath: execPath });
  const dp = new NftablesDataplane({ runner, table: TABLE, clock: () => clock });
  const out: ListenerStep[] = [];
  let loaded = '';
  const record = stepRecorder(
    out,
    () => loaded,
    (res) => ({ notes: res.notes }),
  );
  try {
    const first = await dp.apply(state);
    loaded = listing();
    out.push({
      step: 'first apply',
      notes: first.notes,
      writes: first.kernelWrites,
      verified: first.verified,
      tableAsLoaded: true,
    });
    const changed = nodeState(
      [
        { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:8080'] },
        { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, persistenceTimeout: 60, endpoints: ['10.1.0.3:8080'] },
      ],
      { clusterCIDR: '10.0.0.0/8' },
    );
    await record('an apply with the listener failed', dp.apply(changed));
    await record('back to the first state', dp.apply(state));
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.1 . tcp . 80 }');
    await record('a foreign change, within the retry delay', dp.resync());
    clock += 61_000;
    nft('delete', 'element', 'inet', TABLE, 'service-ips', '{ 10.96.0.2 . tcp . 80 }');
    await record('a foreign change, after the retry delay', dp.resync());
    return out;
  } finally {
    await dp.cleanup().catch(() => undefined);
    await dp.close();
  }
}
