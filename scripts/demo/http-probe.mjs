// Client side of the demo: COUNT HTTP requests to URL, each on a fresh connection (so each is a
// new load-balancing decision), every one bounded by TIMEOUT_MS. Prints one JSON object:
// {"pods": {"NAME": n, ...}, "failed": n, "errors": ["first few errors"]}.
// Usage: node http-probe.mjs URL COUNT [TIMEOUT_MS]
import http from 'node:http';

const [url, count, timeout = '2000'] = process.argv.slice(2);
const pods = {};
const errors = [];
let failed = 0;
function once() {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: Number(timeout) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () =>
        resolve(/^pod (\S+)/.exec(body)?.[1] ?? new Error(`unexpected answer ${JSON.stringify(body.slice(0, 80))}`)),
      );
      res.on('error', resolve);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
    req.on('error', resolve);
  });
}
for (let i = 0; i < Number(count); i++) {
  const r = await once();
  if (typeof r === 'string') pods[r] = (pods[r] ?? 0) + 1;
  else {
    failed++;
    if (errors.length < 3) errors.push(r.message);
  }
}
process.stdout.write(JSON.stringify({ pods, failed, errors }) + '\n');
