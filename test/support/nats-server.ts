import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * Starts a real nats-server (Debian's 2.9 at /usr/sbin/nats-server unless NATS_SERVER_BIN says
 * otherwise) on a free loopback port, with JetStream in a fresh temp dir. `stop()` kills it and
 * removes the dir; `restart()` keeps port and store so JetStream state survives, as a real
 * server restart would. Every server started here is also killed when the test process exits,
 * so a failing test never leaves one behind.
 */
export interface NatsServerOptions {
  readonly jetstream?: boolean;
  /** Text inside the jetstream block, e.g. `max_file_store: 65536` (a server whose JetStream storage fills up). */
  readonly jetstreamLimits?: string;
  /** Listen on this port instead of a free one (another server in its place, e.g. one without JetStream). */
  readonly port?: number;
  /** Extra server config text (accounts, authorization, max_payload, ...), appended verbatim. */
  readonly config?: string;
  /** Extra config text that may reference the chosen port (e.g. a generated config). */
  readonly configFor?: (port: number) => string;
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Stops the server (SIGTERM; SIGKILL after 5 s) and deletes its temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Kills the server without cleanup (SIGKILL), as a crash would. Store and port are kept. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same JetStream store. */
  start(): Promise<void>;
  /** kill() then start(). */
  restart(): Promise<void>;
  /** kill(), delete the JetStream store, start(): NATS back with an EMPTY store. */
  restartEmpty(): Promise<void>;
  /**
   * Rewrites the `config` part of the server's config file and makes the running server reload it
   * (SIGHUP to its PID, what `nats-server --signal reload=PID` sends), as an operator lifting or
   * setting a limit does; resolves once the server logged the reload.
   */
  reconfigure(config: string): Promise<void>;
  /**
   * kill(), the `config` part rewritten, start(): a pod restarted with a changed Secret (a new
   * operator JWT, which a running server will not reload), the JetStream store kept.
   */
  restartWith(config: string): Promise<void>;
  /** What the server wrote to stderr since it was last started (its last 64 kB). */
  log(): string;
}

const BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-nats-'));
  const port = opts.port ?? (await freePort());
  const storeDir = path.join(dir, 'js');
  const conf = path.join(dir, 'server.conf');
  const render = (config: string | undefined) =>
    [
      `listen: "127.0.0.1:${port}"`,
      opts.jetstream ? `jetstream { store_dir: ${JSON.stringify(storeDir)}\n${opts.jetstreamLimits ?? ''} }` : '',
      config ?? '',
      opts.configFor?.(port) ?? '',
    ].join('\n');
  writeFileSync(conf, render(opts.config));
  let proc: ChildProcess | undefined;
  let stopped = false;
  let log = '';

  const start = async (): Promise<void> => {
    if (stopped) throw new Error('nats-server handle already stopped');
    const p = spawn(BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(p);
    proc = p;
    log = '';
    // Ready when it says so: a probe connection to the port was a client the server counted until
    // it saw it close, and under load a test's own connection to a server with max_connections
    // met it and was refused (servers-text, CI).
    let ready: () => void = () => {};
    const said = new Promise<void>((res) => {
      ready = res;
    });
    p.stderr!.on('data', (b: Buffer) => {
      log = (log + b.toString()).slice(-64_000);
      if (log.includes('Server is ready')) ready();
    });
    const exited = new Promise<never>((_, rej) =>
      p.once('exit', (c) => rej(new Error(`nats-server exited (${c}): ${log}`))),
    );
    exited.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`nats-server on ${port} not ready in 10 s: ${log}`)), 10_000);
    });
    try {
      await Promise.race([said, exited, late]);
    } finally {
      clearTimeout(timer);
    }
  };

  const kill = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill('SIGKILL');
    await gone;
    live.delete(p);
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const p = proc;
    proc = undefined;
    if (p && p.exitCode === null) {
      const gone = new Promise<void>((res) => p.once('exit', () => res()));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    if (p) live.delete(p);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await start();
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    stop,
    kill,
    start,
    restart: async () => {
      await kill();
      await start();
    },
    restartEmpty: async () => {
      await kill();
      rmSync(storeDir, { recursive: true, force: true });
      await start();
    },
    restartWith: async (config) => {
      await kill();
      writeFileSync(conf, render(config));
      await start();
    },
    reconfigure: async (config) => {
      const p = proc;
      if (!p || p.exitCode !== null) throw new Error('nats-server is not running');
      writeFileSync(conf, render(config));
      const before = (log.match(/Reloaded server configuration/g) ?? []).length;
      p.kill('SIGHUP');
      const deadline = Date.now() + 10_000;
      while ((log.match(/Reloaded server configuration/g) ?? []).length === before) {
        if (Date.now() > deadline) throw new Error(`nats-server did not reload its config: ${log.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 25)); // the server's log is the only sign of a reload
      }
    },
    log: () => log,
  };
}

/**
 * A TCP port free on every address, taken below the kernel's ephemeral range: a port the kernel
 * hands out for bind(0) or an outgoing connection could be handed to another test process between
 * this call and its use (seen in a fresh-clone CI: a health check port the applier held on
 * 127.0.0.2 only was given to another test's server on 127.0.0.1). Random in [10000, range start),
 * checked by listening on every address; the kernel's pick where that range is too small.
 */
export async function freePort(): Promise<number> {
  const low = 10_000;
  const high = ephemeralRangeStart();
  for (let i = 0; high - low >= 1000 && i < 50; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await listensOn(port)) return port;
  }
  const port = await listensOn(0);
  if (port === false) throw new Error('no free TCP port');
  return port;
}

function ephemeralRangeStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 0;
  } catch {
    return 0; // not Linux: the kernel's pick
  }
}

/** Listens on every address at `port` (0: the kernel's pick) and closes; the port, or false if taken. */
function listensOn(port: number): Promise<number | false> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '0.0.0.0', () => {
      const a = s.address();
      const got = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(got));
    });
  });
}

/** Resolves once the port accepts TCP connections (the server is ready to serve clients). */
