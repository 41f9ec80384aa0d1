// Shared setup for the console's browser tests: a real planner (SQLite, nats-server, manifests
// directory, HTTP API with a token file) whose nodes are simulated by publishing the ACKs and
// NACKs an applier would send on the real bus, and headless Chromium driven by playwright-core.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ackSubject } from '../../../libs/bus/index.ts';
import { DEFAULT_PROXY_CONFIG, type NodeTarget } from '../../../libs/model/index.ts';
import { nodeStateHash, renderNodeState } from '../../../libs/planner/index.ts';
import type { PlannerStatusRow } from '../../../services/planner/fleet-status.ts';
import { runPlanner, type RunningPlanner, type RunPlannerOptions } from '../../../services/planner/run-planner.ts';
import { ack, nack, nodeYaml, plannerEnv, sendAck, until, type PlannerEnv } from '../planner/planner-support.ts';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
export const TOKENS = { operator: 'op-secret-token', viewer: 'view-secret-token' };
/** Screenshots of the tests: SWITCHBOARD_ARTIFACTS or a temp dir (never the source tree). */
export const ARTIFACTS = process.env.SWITCHBOARD_ARTIFACTS ?? path.join(tmpdir(), 'switchboard-console-artifacts');

export interface ConsoleEnv {
  readonly env: PlannerEnv;
  readonly planner: RunningPlanner;
  readonly nodes: string[];
  /** ACK the latest version (and each node's target revision) from every node given. */
  ackAll(nodes?: readonly string[]): Promise<void>;
  nack(node: string, error: string): Promise<void>;
  /**
   * Opens the console as the token's holder; `base` reaches the planner another way (a proxy);
   * `initScript` runs in the page before its own scripts (a browser clock set wrong).
   */
  open(token: string, base?: string, initScript?: string): Promise<Page>;
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

let browser: Browser | undefined;

export async function consoleEnv(
  nodeCount: number,
  files: Record<string, string> = {},
  plannerOptions: Partial<RunPlannerOptions> = {},
): Promise<ConsoleEnv> {
  const env = await plannerEnv();
  const nodes = Array.from(
    { length: nodeCount },
    (_, i) => `node-${String(i + 1).padStart(String(nodeCount).length, '0')}`,
  );
  env.write('nodes.yaml', nodes.map((n, i) => nodeYaml(n, `10.${(i >> 8) & 255}.${i & 255}.1`)).join('---\n'));
  for (const [f, text] of Object.entries(files)) env.write(f, text);
  const tokenFile = path.join(env.dir, 'tokens');
  writeFileSync(tokenFile, `${TOKENS.operator} alice operator\n${TOKENS.viewer} bob viewer\n`);
  const planner = await runPlanner({
    manifests: env.manifests,
    nats: env.nats.url,
    db: env.db,
    http: '127.0.0.1:0',
    tokenFile,
    config: DEFAULT_PROXY_CONFIG,
    debounceMs: 20,
    pollMs: 100,
    say: () => {},
    ...plannerOptions,
  });
  await planner.planner.synced;
  const p = planner.planner;
  const expected = (node: string) => {
    const t = p.targetOf(node);
    return {
      t,
      hash: nodeStateHash(renderNodeState(p.data.publishedData(), node, p.config.revision(t.configRevision)!.config)),
    };
  };
  const pages: Page[] = [];
  return {
    env,
    planner,
    nodes,
    ackAll: async (which = nodes) => {
      await until(() => p.data.latest(), 5000, 'a version');
      const sent = new Map<string, NodeTarget>();
      for (const n of which) {
        const { t, hash } = expected(n);
        sent.set(n, t);
        env.nc.publish(ackSubject(n), JSON.stringify(ack(n, t.version, t.configRevision, hash, p.data.latest()!.hash)));
      }
      await env.nc.flush();
      // flush() means the server has them, not that the planner has read them: a rollout started
      // right after saw every node UNKNOWN under load (CI-like run, 2 busy loops). Read, and
      // checked: SYNCED, unless the ACKs moved a rollout on and with it the node's target.
      const done = (r: PlannerStatusRow) => {
        const t = sent.get(r.node);
        if (!t || r.appliedVersion !== t.version || r.appliedConfigRevision !== t.configRevision) return false;
        return r.status === 'SYNCED' || r.targetVersion !== t.version || r.targetConfigRevision !== t.configRevision;
      };
      await until(
        () => p.status().filter(done).length === sent.size,
        10_000,
        `the planner read and checked ${sent.size} ACK(s)`,
      );
    },
    nack: async (node, error) => {
      const t = p.targetOf(node);
      await sendAck(env.nc, nack(node, t.version, t.configRevision, error));
    },
    open: async (token, base = planner.url, initScript) => {
      const page = await openConsole(base, token, initScript);
      pages.push(page);
      return page;
    },
    screenshot,
    close: async () => {
      for (const pg of pages) await pg.close().catch(() => {});
      await planner.stop();
      await env.cleanup();
    },
  };
}

/** The one headless Chromium of this test file, launched at the first call (seconds on a loaded host). */
export async function sharedBrowser(): Promise<Browser> {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  return browser;
}

/** A full-page screenshot into ARTIFACTS as NAME.png; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * A new tab of the shared headless Chromium on the console at `base` (a planner's API URL), signed
 * in with `token`; `initScript` runs in the page before its own scripts.
 */
export async function openConsole(base: string, token: string, initScript?: string): Promise<Page> {
  const page = await (await sharedBrowser()).newPage({ viewport: { width: 1400, height: 900 } });
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${base}/ui/#token=${token}`);
  return page;
}

export async function closeBrowser(): Promise<void> {
  await browser?.close();
  browser = undefined;
}

/**
 * A TCP relay to the planner that can go silent without closing anything, as a hung planner (a
 * stopped process, a stuck event loop) or a half-open path looks from the browser: while frozen,
 * bytes in both directions are held, and new connections are accepted but get no answer.
 */
export async function freezableRelay(target: string): Promise<{
  url: string;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}> {
  const { hostname, port } = new URL(target);
  let frozen = false;
  const held: { to: net.Socket; data: Buffer }[] = [];
  const sockets = new Set<net.Socket>();
  const relay = (from: net.Socket, to: net.Socket) =>
    from.on('data', (data: Buffer) => (frozen ? held.push({ to, data }) : to.write(data)));
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    freeze: () => {
      frozen = true;
    },
    thaw: () => {
      frozen = false;
      for (const { to, data } of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
