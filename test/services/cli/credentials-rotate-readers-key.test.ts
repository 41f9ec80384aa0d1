import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { connectBus, isCredentialRefusal, TargetStore } from '../../../libs/bus/index.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { sbIn } from './cli-support.ts';

// A leaked credential issuer key (the readers account's signing key: it mints every node's and
// observer's NATS credential) could only be replaced by `credentials init`, which makes new
// accounts too: JetStream's streams and buckets belong to the old account, so the planner found an
// empty NATS. `credentials rotate-readers-key` replaces that one key and keeps the accounts.

let dir = '';
const f = (name: string) => path.join(dir, name);
let server: NatsServerHandle | undefined;
const conns: NatsConnection[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-rotate-readers-'));
});
afterEach(async () => {
  for (const c of conns.splice(0)) await c.close().catch(() => {});
  await server?.stop();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

type Secret = { metadata: { name: string; namespace: string }; stringData: Record<string, string> };
const secretsOf = (yaml: string) =>
  new Map(parseAllDocuments(yaml).map((d) => [(d.toJS() as Secret).metadata.name, d.toJS() as Secret]));

async function sb(args: string[]) {
  const r = await sbIn(args);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

/** A node credential minted from a keys file, written where connectBus reads it. */
async function nodeCreds(keys: string, node: string, name: string): Promise<string> {
  writeFileSync(f(name), await sb(['credentials', 'mint', '--keys', keys, '--node', node, '--ttl', '600']), {
    mode: 0o600,
  });
  return f(name);
}

/** One connection attempt, no retry: undefined when NATS takes the credential, else its refusal. */
async function refusal(credsFile: string): Promise<string | undefined> {
  try {
    const nc = await connectBus({
      servers: server!.url,
      name: 'probe',
      node: 'node-a',
      auth: { credsFile },
      extra: { reconnect: false, maxReconnectAttempts: 0 },
    });
    await nc.close();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('credentials rotate-readers-key', () => {
  it('old node credentials are refused, new ones ACK, JetStream keeps its data, the accounts and the planner credential stay', async () => {
    const installed = secretsOf(await sb(['credentials', 'init', '--keys-out', f('k0.json')]));
    server = await startNatsServer({
      jetstream: true,
      config: installed.get('switchboard-nats-resolver')!.stringData['resolver.conf']!,
    });
    writeFileSync(f('planner.creds'), installed.get('switchboard-planner')!.stringData['planner.creds']!);
    const planner = await connectBus({
      servers: server.url,
      name: 'planner',
      auth: { credsFile: f('planner.creds') },
      extra: { reconnectDelayHandler: () => 100 },
    });
    conns.push(planner);
    const targets = await TargetStore.open({ nc: planner });
    await targets.setDefaultTarget({ version: 7, configRevision: 3 });
    const acks: string[] = [];
    planner.subscribe('sb.ack.*', {
      callback: (_e, m) => {
        acks.push(`${m.subject} ${m.string()}`);
      },
    });
    await planner.flush();
    const oldCreds = await nodeCreds(f('k0.json'), 'node-a', 'old.creds');
    expect(await refusal(oldCreds)).toBeUndefined();

    const rotated = secretsOf(
      await sb(['credentials', 'rotate-readers-key', '--keys', f('k0.json'), '--keys-out', f('k1.json')]),
    );
    // Only the two Secrets that change; the planner's, the signing key's and the appliers' stay.
    expect([...rotated.keys()].sort()).toEqual(['switchboard-credential-issuer', 'switchboard-nats-resolver']);
    expect(rotated.get('switchboard-nats-resolver')!.metadata.namespace).toBe('switchboard');
    const k0 = JSON.parse(readFileSync(f('k0.json'), 'utf8')) as Record<string, string>;
    const k1 = JSON.parse(readFileSync(f('k1.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(k1).filter((k) => k1[k] !== k0[k])).toEqual(['readersSigningKeySeed']);
    expect(Object.keys(k1).sort()).toEqual(Object.keys(k0).sort());
    const issuer = rotated.get('switchboard-credential-issuer')!.stringData;
    expect(issuer['account-signing.nk']).toBe(`${k1.readersSigningKeySeed}\n`);
    expect(issuer['account.pub']).toBe(installed.get('switchboard-credential-issuer')!.stringData['account.pub']);

    // The NATS pods restarted with the new resolver Secret (a running nats-server reloads account
    // JWTs but refuses a re-signed operator JWT); the planner reconnects with its credential.
    // The node's ACK is core NATS: it reaches the planner only once the planner has reconnected and
    // its subscription is back on the server (under load the node was quicker, CI).
    const reconnected = (async () => {
      for await (const s of planner.status()) if (s.type === 'reconnect') return;
    })();
    await server.restartWith(rotated.get('switchboard-nats-resolver')!.stringData['resolver.conf']!);
    // The old key's node credential is refused; one minted with the new key connects and ACKs.
    expect(isCredentialRefusal((await refusal(oldCreds)) ?? 'taken')).toBe(true);
    const node = await connectBus({
      servers: server.url,
      name: 'node-a',
      node: 'node-a',
      auth: { credsFile: await nodeCreds(f('k1.json'), 'node-a', 'new.creds') },
    });
    conns.push(node);
    await reconnected;
    await planner.flush();
    node.publish('sb.ack.node-a', 'after the rotation');
    await node.flush();
    await expect.poll(() => acks).toEqual(['sb.ack.node-a after the rotation']);
    // The accounts are the same, so JetStream holds what it held, and the node reads its target.
    const kv = await new Kvm(node).open('sb_targets', { allow_direct: true });
    expect((await kv.get('default'))?.json()).toMatchObject({ version: 7, configRevision: 3 });
    expect(planner.isClosed()).toBe(false);
    expect(await refusal(f('planner.creds'))).toBeUndefined();
  });

  it('keys that are not a whole keys file, or a --keys-out that exists, are usage errors (exit 2) and write nothing', async () => {
    await sb(['credentials', 'init', '--keys-out', f('k0.json')]);
    const partial = JSON.parse(readFileSync(f('k0.json'), 'utf8')) as Record<string, string>;
    delete partial.operatorSeed;
    writeFileSync(f('partial.json'), JSON.stringify(partial));
    writeFileSync(f('bad-seed.json'), JSON.stringify({ ...partial, operatorSeed: 'not-a-seed' }));
    for (const [keys, out, why] of [
      [f('partial.json'), f('k1.json'), /--keys .*partial\.json: missing operatorSeed/],
      [f('bad-seed.json'), f('k1.json'), /--keys .*bad-seed\.json: .*invalid/],
      [f('k0.json'), f('k0.json'), /--keys-out .*k0\.json: exists \(refusing to replace account keys\)/],
    ] as const) {
      const r = await sbIn(['credentials', 'rotate-readers-key', '--keys', keys, '--keys-out', out]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stdout).toBe('');
    }
    expect(existsSync(f('k1.json'))).toBe(false);
  });
});
