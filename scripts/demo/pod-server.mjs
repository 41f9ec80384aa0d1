// A demo pod: an HTTP server in its own network namespace that answers every request with
// "pod NAME". Usage: node pod-server.mjs NAME PORT. Prints "ready" once listening; SIGTERM stops it.
import http from 'node:http';

const [name, port] = process.argv.slice(2);
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
  res.end(`pod ${name}\n`);
});
server.listen(Number(port), '0.0.0.0', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
