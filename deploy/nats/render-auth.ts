/**
 * Renders deploy/nats/auth.conf from a JSON node list:
 *   npx tsx deploy/nats/render-auth.ts nodes.json > deploy/nats/auth.conf
 * nodes.json: { "planner": {"user": "planner", "password": "<bcrypt>"},
 *               "observer": {"user": "ctl", "password": "<bcrypt>"},          (optional)
 *               "nodes": [{"name": "node-a", "user": "node-a", "password": "<bcrypt>"},
 *                         {"name": "node-b", "nkey": "UD..."}] }
 * Passwords may be bcrypt hashes (`nats server passwd`), which nats-server accepts as is.
 */
import { readFileSync } from 'node:fs';
import { renderServerAuthConfig, type ServerConfigInput } from '../../libs/bus/server-config.ts';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: render-auth.ts NODES.json\n');
  process.exit(2);
}
process.stdout.write(renderServerAuthConfig(JSON.parse(readFileSync(file, 'utf8')) as ServerConfigInput));
