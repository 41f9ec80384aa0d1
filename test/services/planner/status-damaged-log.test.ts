// probe13 R6: a planner restarted on a damaged log file (a backup copied over it, the old -wal
// beside it) threw SQLITE_CORRUPT from a read /status makes, and the whole answer was a 409:
// `ctl status` printed one error and no node. /status now serves what it can read, with the
// log's error in one line (`logError`), and `ctl status` shows the node table and that line.

import { execFile } from 'node:child_process';
import type { Server } from 'node:http';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import { EventLogError } from '../../../libs/eventlog/index.ts';
import { createHttpApi } from '../../../services/planner/http-api.ts';
import { BIN } from '../../faults/fleet.ts';

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

const DAMAGED = 'event log /var/lib/switchboard/p1.db: not a usable SQLite file (database disk image is malformed)';

it('/status and ctl status serve the node table and the log error when a log read fails', async () => {
  const row = {
    node: 'node-1',
    status: 'SYNCED',
    mode: 'apply',
    targetVersion: 6,
    appliedVersion: 6,
    targetConfigRevision: 1,
    appliedConfigRevision: 1,
    lag: 0,
    reason: '',
    hashMatch: true,
  };
  // the planner's in-memory view (a test double: only what /status reads); the log's reads fail
  const planner = {
    isSynced: true,
    status: () => [row],
    data: { latest: () => ({ version: 6, hash: 'h6' }), pin: undefined, rejections: new Map(), rejectedCount: 0 },
    config: { state: { defaultRevision: 1 }, elapsed: () => undefined },
    sourceRejections: [],
    vipConflicts: () => [],
    sourceProblem: () => undefined,
    sourceHealth: () => null,
    failure: () => undefined,
    failingFor: () => undefined,
  };
  server = createHttpApi({
    planner: planner as never,
    registry: new Registry(),
    loopbackOnly: true,
    retention: () => {
      throw new EventLogError('NOT_A_DATABASE', DAMAGED);
    },
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const res = await fetch(`${url}/status`);
  const body = (await res.json()) as Record<string, unknown>;
  expect(res.status).toBe(200);
  expect(body).toMatchObject({ latestVersion: 6, nodes: [{ node: 'node-1', status: 'SYNCED' }], logError: DAMAGED });
  expect(body.retention).toBeNull();

  const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'ctl', '--server', url, 'status'], {
    encoding: 'utf8',
  });
  expect(stdout).toContain(`WARNING: status is partial: ${DAMAGED}`);
  expect(stdout).toMatch(/^node-1 +SYNCED/m);
});
