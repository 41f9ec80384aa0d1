/**
 * One child process of the fan-out bench: `count` simulated appliers, each with its own NATS
 * connection and a real ApplierSession over a dry-run dataplane. Each connection also answers
 * the core-NATS baseline ping (bench.ping → reply), so both measurements reach the same
 * connections. Prints "ready" when every session is started; exits when stdin closes.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ApplierSession } from '../../libs/applier/index.ts';
import { verifierFromPem } from '../../libs/bus/index.ts';
import { DryRunDataplane } from '../../libs/dataplane/index.ts';
import { startCpuProfile } from '../cpu-profile.ts';
import { tuneV8ForApplier } from '../../services/applier/v8-tiering.ts';

const [url, countArg, firstArg, publicKeyPem, cpuProfDir, applierV8] = process.argv.slice(2);
// as the applier command does first (services/cli/commands/applier.ts), before any session runs
if (applierV8 !== '0') tuneV8ForApplier();
// the planner's public key when the run is signed: every applier verifies targets and deltas
const verifier = publicKeyPem ? verifierFromPem(publicKeyPem) : undefined;
const count = Number(countArg);
const first = Number(firstArg);
const conns: NatsConnection[] = [];
const sessions: ApplierSession[] = [];

async function startOne(i: number): Promise<void> {
  const name = `node-${i}`;
  // a long connect timeout: 250 connections per process start together on a loaded host
  const nc = await connect({ servers: url!, name, maxReconnectAttempts: -1, timeout: 60_000 });
  conns.push(nc);
  nc.subscribe('bench.ping', {
    callback: (_e, m) => {
      m.respond(m.data);
    },
  });
  sessions.push(
    await ApplierSession.start({ nc, node: name, dataplane: new DryRunDataplane(), heartbeatMs: 0, verifier }),
  );
}

const CONCURRENCY = 16; // consumer creation is a JetStream API call: keep the server's queue short
for (let i = 0; i < count; i += CONCURRENCY) {
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - i) }, (_, j) => startOne(first + i + j)));
}
await Promise.all(conns.map((c) => c.flush()));

// With a profile directory: profile the events window only (between the parent's two counter
// reads), so start-up and shutdown never mix into the per-event profile.
let stopProfile: (() => Promise<object>) | undefined;
let profileWritten: Promise<void> = Promise.resolve();
async function toggleProfile(): Promise<void> {
  if (!cpuProfDir) return;
  if (!stopProfile) {
    stopProfile = await startCpuProfile();
    return;
  }
  const profile = await stopProfile();
  writeFileSync(path.join(cpuProfDir, `fanout-worker-${first}-${process.pid}.cpuprofile`), JSON.stringify(profile));
}

// byte counters, asked for by the parent over NATS on a connection of their own, so the
// parent's reads (two per event with the per-phase CPU) are not counted as the appliers' traffic
const ctl = await connect({ servers: url!, name: `bench-ctl-${first}` });
ctl.subscribe(`bench.stats.${first}`, {
  callback: (_e, m) => {
    const s = conns.reduce(
      (a, c) => {
        const x = c.stats();
        return {
          inBytes: a.inBytes + x.inBytes,
          outBytes: a.outBytes + x.outBytes,
          inMsgs: a.inMsgs + x.inMsgs,
          outMsgs: a.outMsgs + x.outMsgs,
        };
      },
      { inBytes: 0, outBytes: 0, inMsgs: 0, outMsgs: 0 },
    );
    const cpu = process.cpuUsage();
    m.respond(JSON.stringify({ ...s, cpuMs: (cpu.user + cpu.system) / 1000, sysMs: cpu.system / 1000 }));
    // the reads that open and close the events window say so; the per-phase reads inside it do not
    if (m.string() === 'window') profileWritten = toggleProfile();
  },
});
await ctl.flush();
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', async () => {
  await profileWritten;
  for (const s of sessions) await s.stop();
  await Promise.all([...conns, ctl].map((c) => c.close()));
  process.exit(0);
});
