import { execFile } from 'node:child_process';
import { renameSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OperationRecord } from '../../../libs/eventlog/index.ts';
import { DEFAULT_PROXY_CONFIG, operationOutcome } from '../../../libs/model/index.ts';
import { authenticate, parseTokenFile } from '../../../services/planner/bearer-auth.ts';
import { checkOpenApi, parseListenAddress } from '../../../services/planner/listen-address.ts';
import { recordedActor } from '../../../services/planner/http-api.ts';
import { runPlanner, type RunningPlanner } from '../../../services/planner/run-planner.ts';
import { nodeYaml, plannerEnv, svcYaml, until, type PlannerEnv } from './planner-support.ts';

const run = promisify(execFile);
const BIN = new URL('../../../bin/switchboard', import.meta.url).pathname;

describe('token file', () => {
  it('reads TOKEN IDENTITY [ROLE]; no ROLE is viewer', () => {
    const t = parseTokenFile('# comment\n\nv1 vera\nop1 olga operator\nv2 victor viewer\n', 'tokens');
    expect(t.map((e) => [e.identity, e.role])).toEqual([
      ['vera', 'viewer'],
      ['olga', 'operator'],
      ['victor', 'viewer'],
    ]);
    expect(authenticate(t, 'Bearer op1')).toEqual({ identity: 'olga', role: 'operator' });
    expect(authenticate(t, 'Bearer v1')).toEqual({ identity: 'vera', role: 'viewer' });
    expect(authenticate(t, 'Bearer nope')).toBeUndefined();
    expect(authenticate(t, undefined)).toBeUndefined();
  });

  it('names the file and line of a malformed entry', () => {
    expect(() => parseTokenFile('a alice\nb bob admin\n', 'tok')).toThrow(
      /^tok:2: role "admin" must be viewer or operator$/,
    );
    expect(() => parseTokenFile('a alice\n\nlonely\n', 'tok')).toThrow(
      /^tok:3: expected "TOKEN IDENTITY \[viewer\|operator\]", got 1 field$/,
    );
    expect(() => parseTokenFile('a alice operator extra\n', 'tok')).toThrow(/^tok:1: .*got 4 fields$/);
    expect(() => parseTokenFile('a ci/alice\n', 'tok')).toThrow(/^tok:1: identity "ci\/alice"/);
    expect(() => parseTokenFile('a alice\nb bob\na carol operator\n', 'tok')).toThrow(
      /^tok:3: the same token is already on line 1$/,
    );
    expect(() => parseTokenFile('# nothing\n', 'tok')).toThrow(/^tok: no tokens$/);
  });

  it('records the token identity as actor; a client-sent name only refines it', () => {
    expect(recordedActor('ci', undefined)).toBe('ci');
    expect(recordedActor('ci', 'alice')).toBe('ci/alice');
    expect(recordedActor('ci', 'ci/alice')).toBe('ci/alice');
    expect(recordedActor('ci', 'root')).toBe('ci/root');
    expect(recordedActor(undefined, 'alice')).toBe('alice');
    expect(recordedActor(undefined, undefined)).toBe('anonymous');
    expect(() => recordedActor('ci', 'a\u0007b')).toThrow(/control characters/);
  });
});

describe('listen address', () => {
  it('parses host:port forms and says which are loopback', () => {
    expect(parseListenAddress('127.0.0.1:9440')).toEqual({ host: '127.0.0.1', port: 9440, loopback: true });
    expect(parseListenAddress(':0')).toEqual({ host: '127.0.0.1', port: 0, loopback: true });
    expect(parseListenAddress('[::1]:80')).toEqual({ host: '::1', port: 80, loopback: true });
    expect(parseListenAddress('localhost:1')).toMatchObject({ loopback: true });
    expect(parseListenAddress('0.0.0.0:9440')).toMatchObject({ loopback: false });
    expect(parseListenAddress('10.1.2.3:9440')).toMatchObject({ loopback: false });
    expect(() => parseListenAddress('notanaddr')).toThrow(/^--http "notanaddr": not an address/);
    expect(() => parseListenAddress('1.2.3.4:99999')).toThrow(/port 99999 is out of range/);
    expect(() => parseListenAddress('[nope]:1')).toThrow(/nope is not an IP address/);
  });

  it('refuses an open API off loopback unless told so', () => {
    const any = parseListenAddress('0.0.0.0:9440');
    expect(() => checkOpenApi(any, {})).toThrow(/no --token-file.*--insecure-open-api/);
    expect(() => checkOpenApi(any, { insecureOpenApi: true })).not.toThrow();
    expect(() => checkOpenApi(any, { tokenFile: 'x' })).not.toThrow();
    expect(() => checkOpenApi(parseListenAddress('127.0.0.1:1'), {})).not.toThrow();
  });
});

describe('planner HTTP API with roles (real planner, SQLite, nats-server)', () => {
  let env: PlannerEnv;
  let planner: RunningPlanner | undefined;
  let tokenFile: string;
  const said: string[] = [];
  beforeEach(async () => {
    env = await plannerEnv();
    env.write('nodes.yaml', nodeYaml('node-1', '192.0.2.1'));
    env.write('a.yaml', svcYaml('a', '10.96.0.1'));
    tokenFile = path.join(env.dir, 'tokens');
    writeFileSync(tokenFile, 'view-tok vera\nop-tok ci operator\n');
    said.length = 0;
  });
  afterEach(async () => {
    await planner?.stop();
    planner = undefined;
    await env.cleanup();
  });
  const start = async () => {
    planner = await runPlanner({
      manifests: env.manifests,
      nats: env.nats.url,
      db: env.db,
      http: '127.0.0.1:0',
      tokenFile,
      tokenFilePollMs: 50,
      config: DEFAULT_PROXY_CONFIG,
      debounceMs: 20,
      pollMs: 100,
      say: (l) => said.push(l),
    });
    await planner.planner.synced;
    return planner;
  };
  const call = async (p: string, token?: string, body?: unknown, actor?: string) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (actor) headers['x-switchboard-actor'] = actor;
    const res = await fetch(
      planner!.url + p,
      body === undefined ? { headers } : { method: 'POST', headers, body: JSON.stringify(body) },
    );
    const text = await res.text();
    return { code: res.status, json: (text.startsWith('{') ? JSON.parse(text) : { text }) as Record<string, unknown> };
  };
  // accepted pins/unpins; refused ones are recorded too (probe11 K5), kept apart here
  const allOps = () =>
    (planner!.planner['options'].log.operations() as OperationRecord[]).filter(
      (o) => o.kind === 'pin' || o.kind === 'unpin',
    );
  const ops = () => allOps().filter((o) => operationOutcome(o) === 'accepted');

  it('401 without a token, 403 for a viewer writing, operator acts as its identity', async () => {
    await start();
    expect((await call('/healthz')).code).toBe(200);
    expect((await call('/readyz')).code).toBe(200);
    expect(await call('/status')).toMatchObject({ code: 401, json: { error: 'missing or wrong bearer token' } });
    expect((await call('/status', 'wrong')).code).toBe(401);
    expect((await call('/status', 'view-tok')).code).toBe(200);
    expect((await call('/versions', 'view-tok')).code).toBe(200);
    expect((await call('/metrics', 'view-tok')).code).toBe(200);
    expect((await call('/metrics')).code).toBe(401);
    expect(await call('/pin', 'view-tok', { version: 1 })).toMatchObject({
      code: 403,
      json: { error: expect.stringMatching(/vera is a viewer; POST \/pin needs an operator token/) },
    });
    expect((await call('/pin', undefined, { version: 1 })).code).toBe(401);
    expect(allOps()).toHaveLength(0); // refused calls changed nothing; a 401/403 is not even recorded
    // A version is digits: Number() would read these as 1 (they were accepted and pinned to 1).
    for (const bad of ['0x1', '1e0', ' 1 ', '1abc', '0'])
      expect(await call('/pin', 'op-tok', { version: bad })).toMatchObject({
        code: 400,
        json: { error: 'version must be a positive integer' },
      });
    expect(ops()).toHaveLength(0);
    // an operator's refused request is in the log, as refused (probe11 K5)
    expect(allOps().map(operationOutcome)).toEqual(Array(5).fill('refused (400): version must be a positive integer'));

    expect((await call('/pin', 'op-tok', { version: 1, reason: 'test' }, 'alice')).code).toBe(200);
    expect((await call('/unpin', 'op-tok', {})).code).toBe(200);
    expect(ops().map((o: { actor: string }) => o.actor)).toEqual(['ci/alice', 'ci']);
    expect((await call('/nope', 'view-tok')).code).toBe(404);
    expect((await call('/pin', 'op-tok')).code).toBe(405);
  });

  it('a field an operation does not take is a 400 naming it, and nothing is done (a typo did another operation)', async () => {
    await start();
    const status = async () => (await call('/status', 'op-tok')).json as { pinned: unknown; config: unknown };
    const before = await status();
    const cases: [string, Record<string, unknown>, string][] = [
      // lower-case v: before, a config rollback of the whole cluster instead of a pin of version 1
      [
        '/rollback',
        { toversion: 1, reason: 'typo' },
        'unknown field "toversion": POST /rollback takes toVersion, configRevision, fromRevision, rollout, force, expectPin, reason',
      ],
      ['/pin', { version: 1, bogus: true }, 'unknown field "bogus": POST /pin takes version, expectPin, reason'],
      ['/unpin', { version: 1, x: 1 }, 'unknown fields "version", "x": POST /unpin takes expectPin, reason'],
      [
        '/mode',
        { mode: 'nftables', wave: '1' },
        'unknown field "wave": POST /mode takes mode, waves, pauseOnError, bakeMs, waveTimeoutMs, maxFailures, pauseBefore, reason',
      ],
      // "true" as a string: before, read as no pause, so a rollout of every node started
      ['/rollout', { configRevision: 1, pause: 'true' }, 'pause must be true or false'],
    ];
    for (const [path, body, error] of cases)
      expect({ path, ...(await call(path, 'op-tok', body)) }).toEqual({ path, code: 400, json: { error } });
    expect(ops()).toHaveLength(0);
    expect(await status()).toMatchObject({ pinned: before.pinned, config: before.config });
    // a reason is a sentence: the log keeps it for good and audit prints it whole
    expect(await call('/pin', 'op-tok', { version: 1, reason: 'x'.repeat(1001) })).toEqual({
      code: 400,
      json: { error: 'reason is 1001 characters: at most 1000' },
    });
    expect(ops()).toHaveLength(0);
    // the fields ctl sends are taken
    expect((await call('/pin', 'op-tok', { version: 1, expectPin: 0, reason: 'x'.repeat(1000) })).code).toBe(200);
  });

  it('reloads the token file on change and keeps the old tokens when the new file is malformed', async () => {
    await start();
    expect((await call('/pin', 'view-tok', { version: 1 })).code).toBe(403);
    // Replaced by rename, as editors and secret mounts do.
    writeFileSync(tokenFile + '.new', 'view-tok vera operator\nnew-tok nina\n');
    renameSync(tokenFile + '.new', tokenFile);
    await until(async () => (await call('/status', 'new-tok')).code === 200, 5000, 'new token accepted');
    expect((await call('/pin', 'view-tok', { version: 1 })).code).toBe(200);
    expect((await call('/status', 'op-tok')).code).toBe(401); // removed tokens stop working

    writeFileSync(tokenFile, 'view-tok vera operator\nbroken-line-without-identity\n');
    await until(() => said.some((l) => l.includes(`${tokenFile}:2: expected`)), 5000, 'reload error reported');
    expect(said.find((l) => l.includes(`${tokenFile}:2: expected`))).toMatch(/keeping the tokens in force$/);
    expect((await call('/status', 'new-tok')).code).toBe(200);

    // Removed: every token is revoked (review3 L1), the 401 and /readyz say why, stderr once.
    unlinkSync(tokenFile);
    await until(async () => (await call('/status', 'new-tok')).code === 401, 5000, 'tokens revoked');
    expect(await call('/status', 'view-tok')).toMatchObject({
      code: 401,
      json: { error: 'the token file was removed: no token is in force' },
    });
    expect(await call('/readyz')).toMatchObject({
      code: 503,
      json: {
        ready: false,
        reason: 'every API request is refused (401): the token file was removed: no token is in force',
      },
    });
    expect(said.filter((l) => l.includes('removed'))).toEqual([
      `token file ${tokenFile} removed: every token is revoked, the API answers 401 until a file is back`,
    ]);
    writeFileSync(tokenFile, 'new-tok nina\n');
    await until(async () => (await call('/status', 'new-tok')).code === 200, 5000, 'tokens back');
    expect((await call('/readyz')).code).toBe(200);
  });

  it('a malformed token file stops the planner before it opens anything, naming the line', async () => {
    writeFileSync(tokenFile, 'a alice\nb bob superuser\n');
    await expect(start()).rejects.toThrow(`${tokenFile}:2: role "superuser" must be viewer or operator`);
    const r = await run(BIN, [
      'planner',
      '--manifests',
      env.manifests,
      '--nats',
      env.nats.url,
      '--db',
      env.db,
      '--http',
      '127.0.0.1:0',
      '--token-file',
      tokenFile,
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    // bad input: a usage error (exit 2), checked while the flags are read
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `error: option '--token-file <file>' argument '${tokenFile}' is invalid. ${tokenFile}:2: role "superuser" must be viewer or operator.\n`,
    );
  });

  it('the CLI refuses a non-loopback address without --token-file and a bad --http, exit 2, before touching the log', async () => {
    const planner = (...extra: string[]) =>
      run(BIN, ['planner', '--manifests', env.manifests, '--nats', env.nats.url, '--db', env.db, ...extra]).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      );
    const open = await planner('--http', '0.0.0.0:0');
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(
      /^switchboard: --http 0\.0\.0\.0:0 is not a loopback address and there is no --token-file.*--insecure-open-api.*\n$/,
    );
    const bad = await planner('--http', 'notanaddr');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^switchboard: --http "notanaddr": not an address.*\n$/);
    const { existsSync } = await import('node:fs');
    expect(existsSync(env.db)).toBe(false);
  });
});
