// Pod-side TCP+UDP echo server for host netns tests:  node echo-server.mjs <podName> <port>
// Each TCP connection / UDP datagram is answered with "<podName> <peerIp>" so tests see which
// endpoint served them and whether the source was masqueraded. Prints "ready" once listening;
// exits when stdin closes, so a crashed test never leaves a server behind.
import net from 'node:net';
import dgram from 'node:dgram';

const [pod, port] = process.argv.slice(2);
const tcp = net.createServer((s) => {
  s.on('error', () => {});
  s.end(`${pod} ${s.remoteAddress}\n`);
});
const udp = dgram.createSocket('udp4');
udp.on('message', (_m, r) => udp.send(`${pod} ${r.address}\n`, r.port, r.address));
await Promise.all([
  new Promise((res, rej) => {
    tcp.once('error', rej);
    tcp.listen(Number(port), '0.0.0.0', res);
  }),
  new Promise((res, rej) => {
    udp.once('error', rej);
    udp.bind(Number(port), '0.0.0.0', res);
  }),
]);
process.stdout.write('ready\n');
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
