import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { printable } from '../../../services/cli/output.ts';
import { sbIn } from './cli-support.ts';

/**
 * ctl prints text other parties wrote (a node's NACK error, reasons): control characters in it
 * must reach the terminal as visible escapes, never as a carriage return or an escape sequence
 * that erases or redraws what the operator reads (review 3, N3).
 */

// What a compromised node sends as its NACK error: back to the line's start, erase it, draw a lie.
const HOSTILE = 'nft failed\r\x1b[2Knode-a  SYNCED  ipvs  2  2\x1b]52;c;cm0gLXJmIH4=\x07\x9b';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A planner stand-in answering GET /status with a node whose words came from that node, and errors likewise. */
async function plannerSaying(): Promise<string> {
  server = createServer((req, res) => {
    if (req.url === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          latestVersion: 2,
          config: { defaultRevision: 1 },
          rejectedTotal: 0,
          synced: true,
          lastError: `rollout halted: ${HOSTILE}`,
          nodes: [
            {
              node: 'node-a',
              status: 'ERROR',
              mode: 'ipvs',
              targetVersion: 2,
              appliedVersion: 1,
              appliedConfigRevision: 1,
              targetConfigRevision: 1,
              lag: 1,
              reason: `NACK for version 2 config 1: ${HOSTILE}`,
              lastError: HOSTILE,
            },
          ],
        }),
      );
      return;
    }
    res.writeHead(409, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: `refused: ${HOSTILE}` }));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server!.address() as { port: number }).port}`;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not appear
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/;

describe('terminal output', () => {
  it('shows control characters as visible escapes and keeps newlines, tabs and other text', () => {
    expect(printable('a\r\x1b[2Kb\x07\x00\x7f\x9b\tc\nd é ✓')).toBe('a\\r\\e[2Kb\\x07\\x00\\x7f\\x9b\tc\nd é ✓');
    expect(printable('plain')).toBe('plain');
  });

  it('ctl status (table and wide) and a planner error print no raw control character; --json stays exact', async () => {
    const url = await plannerSaying();
    for (const args of [[], ['-o', 'wide']]) {
      const r = await sbIn(['ctl', '--server', url, 'status', ...args]);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(RAW_CONTROL);
      expect(r.stdout).toContain('nft failed\\r\\e[2Knode-a');
      expect(r.stdout).toMatch(/^node-a +ERROR/m); // the row still says what /status says
      expect(r.stdout).toContain('last error: rollout halted: nft failed\\r\\e[2K');
    }
    const json = await sbIn(['ctl', '--server', url, 'status', '--json']);
    expect(JSON.parse(json.stdout).nodes[0].lastError).toBe(HOSTILE);
    const refused = await sbIn(['ctl', '--server', url, 'unpin']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).not.toMatch(RAW_CONTROL);
    expect(refused.stderr).toMatch(/^switchboard: planner: refused: nft failed\\r\\e\[2K.*\n$/);
  });
});
