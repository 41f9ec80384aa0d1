// Dev probe (not the bench): where a per-set element dump's time goes. Builds `table inet probe`
// with K interval maps of E elements each (`nft -f`), then times D element dumps (GETSETELEM) of
// sets at the head or the tail of the table's set list, on 1 or S sockets in parallel, with this
// process's user and system CPU (the kernel's dump work runs in our syscalls). Run it inside a
// netns of its own:
//
//   ip netns add p && ip netns exec p npx tsx bench/nftables/nftables-read-probe.ts --sets 10000; ip netns del p
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { spawnSync } from 'node:child_process';
import { RawNetlinkSocket } from 'netlink';
import { NetlinkConnection, NFT_MSG, dumpRequest, nftType, NFPROTO } from '../../libs/netlink/index.ts';

const { values } = benchArgs({
  options: {
    sets: { type: 'string', default: '10000' },
    elements: { type: 'string', default: '10' },
    dumps: { type: 'string', default: '1000' },
  },
});
const K = Number(values.sets);
const E = Number(values.elements);
const D = Number(values.dumps);
const name = (i: number) => `endpoints-X${i.toString(16).padStart(7, '0')}-default/svc-${i}/http/tcp`;
const lines = ['table inet probe {'];
for (let i = 0; i < K; i++) {
  const els: string[] = [];
  const step = Math.floor(65536 / E);
  for (let e = 0; e < E; e++)
    els.push(
      `${e * step}-${e === E - 1 ? 65535 : (e + 1) * step - 1} : 10.${(i >> 8) & 255}.${i & 255}.${e + 1} . 8080`,
    );
  lines.push(
    `  map ${name(i)} { typeof numgen random mod 65536 : ip daddr . tcp dport; flags interval; elements = { ${els.join(', ')} } }`,
  );
}
lines.push('}');
let t = performance.now();
const r = spawnSync('nft', ['-f', '-'], { input: lines.join('\n'), encoding: 'utf8' });
if (r.status !== 0) throw new Error(r.stderr);
console.log(`load ${K} sets: ${(performance.now() - t).toFixed(0)} ms`);

const conn = () =>
  new NetlinkConnection({
    protocol: 12,
    socket: new RawNetlinkSocket(12, { messagePeeking: true, recvBufferSize: 4 << 20, sendBufferSize: 1 << 20 }),
  });
const t0 = { family: NFPROTO.inet, table: 'probe' };
async function run(label: string, which: number[], sockets: number) {
  const conns = Array.from({ length: sockets }, conn);
  const cpu0 = process.cpuUsage();
  t = performance.now();
  let next = 0;
  let elems = 0;
  await Promise.all(
    conns.map(async (c) => {
      while (next < which.length) {
        const i = which[next++]!;
        const msgs = await c.request({
          type: nftType(NFT_MSG.GETSETELEM),
          payload: dumpRequest(t0, name(i)),
          dump: true,
          operation: 'dump',
        });
        elems += msgs.length;
      }
    }),
  );
  const wall = performance.now() - t;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${label.padEnd(28)} sockets ${String(sockets).padStart(2)}: ${(wall / which.length).toFixed(3)} ms/dump wall, user ${(cpu.user / 1000 / which.length).toFixed(3)}, sys ${(cpu.system / 1000 / which.length).toFixed(3)} ms/dump (${which.length} dumps, ${elems} msgs)`,
  );
  for (const c of conns) c.close();
}
// D dumps each: the first 10 sets, the last 10, or D sets spread over the list (cycling when K < D).
const w = Math.min(10, K);
const head = Array.from({ length: D }, (_, i) => i % w);
const tail = Array.from({ length: D }, (_, i) => K - w + (i % w));
const spread = Array.from({ length: D }, (_, i) => Math.floor((i * K) / D) % K);
await run('head of the set list', head, 1);
await run('tail of the set list', tail, 1);
await run('spread', spread, 1);
await run('spread', spread, 4);
await run('spread', spread, 16);
spawnSync('nft', ['delete', 'table', 'inet', 'probe']);
