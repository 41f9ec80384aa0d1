// Client-side prober:  node echo-client.mjs <tcp|udp> <host> <port> <count> [timeoutMs] [udpSourcePort]
// Makes <count> fresh connections (or datagrams from fresh sockets, so each is a new conntrack
// entry; with a source port, every datagram goes from it: one conntrack entry, as a long-lived UDP
// flow keeps) and prints a JSON array of replies, null for each one that got no answer in time.
import net from 'node:net';
import dgram from 'node:dgram';

const [proto, host, port, count, timeout = '1000', sourcePort] = process.argv.slice(2);
const ms = Number(timeout);
function tcpOnce() {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port) });
    let buf = '';
    const done = (v) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(null), ms);
    s.on('data', (d) => {
      buf += d;
    });
    s.on('end', () => done(buf.trim() || null));
    s.on('error', () => done(null));
  });
}
function udpOnce() {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const done = (v) => {
      clearTimeout(t);
      s.close();
      resolve(v);
    };
    const t = setTimeout(() => done(null), ms);
    s.on('message', (m) => done(m.toString().trim()));
    s.on('error', () => done(null));
    if (sourcePort) s.bind(Number(sourcePort), () => s.send('x', Number(port), host));
    else s.send('x', Number(port), host);
  });
}
const out = [];
for (let i = 0; i < Number(count); i++) out.push(await (proto === 'udp' ? udpOnce() : tcpOnce()));
process.stdout.write(JSON.stringify(out) + '\n');
