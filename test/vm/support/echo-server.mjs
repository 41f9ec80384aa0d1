// Tiny TCP+UDP server run inside a "pod" network namespace by netns.ts:
//   node echo-server.mjs <podName> <port>[,<port>...] [<keepPort>[,<keepPort>...]]
// Every TCP connection gets one line "<podName> <peerIp>:<peerPort>" and is closed;
// every UDP datagram is answered with the same line. On a keep port (TCP only) the connection
// stays open: every line received is answered with that line, and the line "reset" makes
// the server reset the connection (RST, no FIN: a connection closed without TIME_WAIT). The peer address lets tests see
// whether traffic arrived masqueraded. Plain JS (no tsx) so it starts fast under TCG.
// Prints "ready" once all sockets listen; exits when stdin closes, so a crashed test
// process never leaves servers behind.
import net from 'node:net';
import dgram from 'node:dgram';

const [pod, portList, keepList] = process.argv.slice(2);
if (!pod || !portList) {
  process.stderr.write('usage: echo-server.mjs <podName> <port>[,<port>...] [<keepPort>[,<keepPort>...]]\n');
  process.exit(2);
}
const ports = portList.split(',').map(Number);
const keepPorts = keepList ? keepList.split(',').map(Number) : [];
const line = (ip, port) => `${pod} ${ip}:${port}\n`;

const listening = [];
for (const port of ports) {
  const tcp = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.end(line(sock.remoteAddress, sock.remotePort));
  });
  listening.push(
    new Promise((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ port, host: '0.0.0.0' }, resolve);
    }),
  );
  const udp = dgram.createSocket('udp4');
  udp.on('message', (_msg, rinfo) => udp.send(line(rinfo.address, rinfo.port), rinfo.port, rinfo.address));
  listening.push(
    new Promise((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, '0.0.0.0', resolve);
    }),
  );
}
for (const port of keepPorts) {
  const tcp = net.createServer((sock) => {
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const got = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (got === 'reset') return sock.resetAndDestroy();
        sock.write(line(sock.remoteAddress, sock.remotePort));
      }
    });
  });
  listening.push(
    new Promise((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ port, host: '0.0.0.0' }, resolve);
    }),
  );
}
Promise.all(listening).then(
  () => process.stdout.write('ready\n'),
  (err) => {
    process.stderr.write(`echo-server ${pod}: ${err.message}\n`);
    process.exit(1);
  },
);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
