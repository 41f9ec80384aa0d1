/**
 * NATS with per-node permissions, for deployments, the demo and compose.
 *
 * 1. From a node list you keep (passwords may be bcrypt hashes, `nats server passwd`):
 *      npx tsx deploy/nats/render-auth.ts nodes.json > deploy/nats/auth.conf
 *    nodes.json: { "planner": {"user": "planner", "password": "<bcrypt>"},
 *                  "observer": {"user": "ctl", "password": "<bcrypt>"},          (optional)
 *                  "nodes": [{"name": "node-a", "user": "node-a", "password": "<bcrypt>"},
 *                            {"name": "node-b", "nkey": "UD..."}] }
 *
 * 2. A ready-to-run directory with generated secrets:
 *      npx tsx deploy/nats/render-auth.ts --nodes node-a,node-b --dir DIR
 *          [--listen 127.0.0.1:4222] [--store DIR/js] [--signing-key FILE]
 *    writes DIR/server.conf (listen, JetStream store, `include auth.conf`), DIR/auth.conf and
 *    DIR/credentials.json ({"planner": {user, password}, "observer": {...}, "nodes": {NAME:
 *    {user, password}}}, mode 0600), and with --signing-key the planner's Ed25519 key (FILE, and
 *    FILE.pub for `applier --planner-key`), so appliers can start before the planner.
 *    Then: nats-server -c DIR/server.conf; planner --nats-user/--nats-password from
 *    credentials.json; applier --user/--password likewise. Prints the paths as JSON.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  loadOrCreateSigningKey,
  nodeToken,
  renderServerAuthConfig,
  type ServerConfigInput,
} from '../../libs/bus/index.ts';

function usage(msg: string): never {
  process.stderr.write(
    `render-auth: ${msg}\nusage: render-auth.ts NODES.json | --nodes A,B --dir DIR [--listen HOST:PORT] [--store DIR] [--signing-key FILE]\n`,
  );
  process.exit(2);
}

let args: ReturnType<
  typeof parseArgs<{
    options: {
      nodes: { type: 'string' };
      dir: { type: 'string' };
      listen: { type: 'string' };
      store: { type: 'string' };
      'signing-key': { type: 'string' };
    };
    allowPositionals: true;
  }>
>;
try {
  args = parseArgs({
    options: {
      nodes: { type: 'string' },
      dir: { type: 'string' },
      listen: { type: 'string' },
      store: { type: 'string' },
      'signing-key': { type: 'string' },
    },
    allowPositionals: true,
  });
} catch (e) {
  usage((e as Error).message);
}
const v = args.values;

/** Bad input: one line naming it, exit 2, no stack trace (review5 F6: a bad node list printed one). */
function badInput(msg: string): never {
  process.stderr.write(`render-auth: ${msg.replace(/\s+/g, ' ').trim()}\n`);
  process.exit(2);
}

/** The auth config for a node list file (unreadable, not JSON, or not that shape: badInput). */
function fromNodesFile(file: string): string {
  let input: unknown;
  try {
    input = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    badInput(
      `${file}: ${code === 'ENOENT' ? 'no such file' : code ? `cannot read it (${code})` : (e as Error).message}`,
    );
  }
  const i = input as Partial<Record<keyof ServerConfigInput, unknown>> | null;
  if (i === null || typeof i !== 'object' || Array.isArray(i)) badInput(`${file}: expected a JSON object`);
  if (typeof i.planner !== 'object' || i.planner === null)
    badInput(`${file}: "planner" must be an object {user, password}`);
  if (!Array.isArray(i.nodes)) badInput(`${file}: "nodes" must be a list of {name, user, password} or {name, nkey}`);
  try {
    return renderServerAuthConfig(input as ServerConfigInput);
  } catch (e) {
    badInput(`${file}: ${(e as Error).message}`);
  }
}

if (!v.nodes) {
  const file = args.positionals[0];
  if (!file || args.positionals.length > 1) usage('give NODES.json, or --nodes and --dir');
  process.stdout.write(fromNodesFile(file));
} else {
  if (!v.dir) usage('--nodes needs --dir');
  const names = v.nodes
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) usage('--nodes: no node names');
  for (const n of names) {
    try {
      nodeToken(n);
    } catch (e) {
      usage(`--nodes: ${(e as Error).message}`);
    }
  }
  const listen = v.listen ?? '127.0.0.1:4222';
  if (!/^[^\s:]*:\d+$/.test(listen)) usage(`--listen ${listen}: expected HOST:PORT`);
  const dir = path.resolve(v.dir);
  const store = path.resolve(v.store ?? path.join(dir, 'js'));
  mkdirSync(dir, { recursive: true });
  const secret = () => randomBytes(18).toString('base64url');
  const planner = { user: 'planner', password: secret() };
  const observer = { user: 'ctl', password: secret() };
  const nodes = names.map((name) => ({ name, user: `node-${nodeToken(name)}`, password: secret() }));
  writeFileSync(path.join(dir, 'auth.conf'), renderServerAuthConfig({ planner, observer, nodes }), { mode: 0o600 });
  writeFileSync(
    path.join(dir, 'server.conf'),
    [
      '# generated by deploy/nats/render-auth.ts',
      `listen: ${JSON.stringify(listen)}`,
      `jetstream { store_dir: ${JSON.stringify(store)} }`,
      'include ./auth.conf',
      '',
    ].join('\n'),
  );
  const credentials = {
    planner,
    observer,
    nodes: Object.fromEntries(nodes.map((n) => [n.name, { user: n.user, password: n.password }])),
  };
  writeFileSync(path.join(dir, 'credentials.json'), JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  const out: Record<string, string> = {
    serverConf: path.join(dir, 'server.conf'),
    authConf: path.join(dir, 'auth.conf'),
    credentials: path.join(dir, 'credentials.json'),
  };
  if (v['signing-key']) {
    try {
      loadOrCreateSigningKey(path.resolve(v['signing-key']));
    } catch (e) {
      badInput(`--signing-key: ${(e as Error).message}`);
    }
    out.signingKey = path.resolve(v['signing-key']);
    out.plannerKey = `${out.signingKey}.pub`;
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
