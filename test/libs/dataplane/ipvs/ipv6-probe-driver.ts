// Runs probeIpv6Netfilter in this process's network namespace (the test starts it with
// `ip netns exec`): prints a JSON array of its answers, one per ip6tables-save path in argv.
import { probeIpv6Netfilter } from '../../../../libs/dataplane/ipvs/netlink-kernel.ts';

const answers = [];
for (const tool of process.argv.slice(2)) answers.push((await probeIpv6Netfilter(tool)) ?? null);
process.stdout.write(JSON.stringify(answers) + '\n');
