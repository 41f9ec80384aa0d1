import { Command } from 'commander';
import { UsageError } from '../cli-errors.ts';
import type { SetExit } from './index.ts';

interface Ctx { server: string; token?: string; actor?: string; json?: boolean }

/** Calls the planner's HTTP API; one clear line on failure. */
async function call(ctx: Ctx, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (ctx.token) headers.authorization = `Bearer ${ctx.token}`;
  if (ctx.actor) headers['x-switchboard-actor'] = ctx.actor;
  let res: Response;
  try {
    res = await fetch(new URL(path, ctx.server), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new Error(`cannot reach planner at ${ctx.server}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`);
  }
  const text = await res.text();
  let json: Record<string, unknown>;
  try { json = JSON.parse(text) as Record<string, unknown>; } catch { throw new Error(`planner answered ${res.status} with non-JSON`); }
  if (!res.ok) throw new Error(`planner: ${String(json.error ?? res.status)}`);
  return json;
}

function table(rows: (string | number | null | boolean)[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '-').length)));
  return rows.map((r) => r.map((c, i) => String(c ?? '-').padEnd(w[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}

const num = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a positive integer`);
  return n;
};

export function registerCtl(program: Command, setExit: SetExit): void {
  const ctl = program.command('ctl')
    .description('operate a running planner: status, versions, diffs, rollouts, rollbacks, pins, mode switches')
    .requiredOption('--server <url>', 'planner HTTP API, e.g. http://127.0.0.1:9440')
    .option('--token <token>', 'bearer token (default: $SWITCHBOARD_TOKEN)')
    .option('--actor <name>', 'who is acting, recorded with the operation')
    .option('--json', 'print JSON');
  const ctx = (): Ctx => {
    const o = ctl.opts<Ctx>();
    return { ...o, token: o.token ?? process.env.SWITCHBOARD_TOKEN };
  };
  const out = (c: Ctx, json: unknown, human: () => string) => {
    process.stdout.write(c.json ? JSON.stringify(json, null, 2) + '\n' : human());
    setExit(0);
  };
  const op = (c: Ctx, r: Record<string, unknown>) => out(c, r, () => `${Object.entries(r).filter(([k]) => k !== 'state' && k !== 'config').map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n')}\n`);

  ctl.command('status').description('every node with its status word').action(async () => {
    const c = ctx();
    const s = await call(c, 'GET', '/status');
    const nodes = s.nodes as Record<string, unknown>[];
    // --json: {nodes: [{node, status, ...}], ...}: every node with its status word.
    out(c, s, () => {
      const cfg = s.config as { defaultRevision: number; rollout?: { status: string; configRevision: number; wave: number; waves: unknown[] } };
      const head = `version ${s.latestVersion}${s.pinned ? ` (pinned to ${(s.pinned as { version: number }).version})` : ''}, config revision ${cfg.defaultRevision}`
        + (cfg.rollout ? `, rollout of ${cfg.rollout.configRevision} ${cfg.rollout.status} (wave ${cfg.rollout.wave + 1}/${cfg.rollout.waves.length})` : '')
        + `, rejected objects ${s.rejectedTotal}${s.synced ? '' : ', NOT SYNCED'}\n`;
      return head + table([['NODE', 'STATUS', 'TARGET', 'APPLIED', 'CONFIG', 'HASH', 'LAG', 'ERROR'],
        ...nodes.map((n) => [n.node as string, n.status as string, n.targetVersion as number, n.appliedVersion as number,
          `${n.appliedConfigRevision ?? '-'}/${n.targetConfigRevision}`, n.hashMatch === null ? '-' : n.hashMatch ? 'ok' : 'MISMATCH', n.lag as number, (n.lastError as string) ?? null])]);
    });
  });
  ctl.command('versions').description('data versions with hashes').action(async () => {
    const c = ctx();
    const v = await call(c, 'GET', '/versions');
    const list = v.versions as { version: number; hash: string; reason: string; createdAt: string; contentOf?: number }[];
    out(c, v, () => table([['VERSION', 'HASH', 'CREATED', 'REASON'], ...list.map((x) => [x.version, x.hash.slice(0, 16), x.createdAt, x.reason])]));
  });
  ctl.command('diff <a> <b>').description('what changed between two data versions').action(async (a: string, b: string) => {
    const c = ctx();
    const d = await call(c, 'GET', `/diff?a=${num(a, 'A')}&b=${num(b, 'B')}`);
    out(c, d, () => ['addedServices', 'removedServices', 'changedServices', 'addedNodes', 'removedNodes', 'changedNodes']
      .flatMap((k) => (d[k] as string[]).map((x) => `${k.startsWith('added') ? '+' : k.startsWith('removed') ? '-' : '~'} ${k.endsWith('Nodes') ? 'node' : 'service'} ${x}`)).join('\n') + '\n');
  });
  ctl.command('rollout').description('roll a config revision out in waves')
    .option('--config-revision <r>').option('--waves <spec>', 'e.g. 1,10%,50%,100%', '1,10%,50%,100%')
    .option('--pause-on-error', 'pause (keep the wave) on NACK instead of halting').option('--resume', 'resume a paused rollout')
    .option('--reason <text>')
    .action(async (o: { configRevision?: string; waves: string; pauseOnError?: boolean; resume?: boolean; reason?: string }) => {
      if (!o.resume && !o.configRevision) throw new UsageError('rollout needs --config-revision R (or --resume)');
      const c = ctx();
      op(c, await call(c, 'POST', '/rollout', { configRevision: num(o.configRevision, '--config-revision'), waves: o.waves, pauseOnError: !!o.pauseOnError, resume: !!o.resume, reason: o.reason }));
    });
  ctl.command('rollback').description('instant rollback: config (default) or data (--to-version)')
    .option('--to-version <n>', 'publish version N\'s content as a new version and hold it').option('--config-revision <r>', 'config revision to return to (default: the previous one)')
    .option('--reason <text>')
    .action(async (o: { toVersion?: string; configRevision?: string; reason?: string }) => {
      const c = ctx();
      op(c, await call(c, 'POST', '/rollback', { toVersion: num(o.toVersion, '--to-version'), configRevision: num(o.configRevision, '--config-revision'), reason: o.reason }));
    });
  ctl.command('pin').requiredOption('--version <n>').option('--reason <text>').description('hold published data at version N\'s content')
    .action(async (o: { version: string; reason?: string }) => {
      const c = ctx();
      op(c, await call(c, 'POST', '/pin', { version: num(o.version, '--version'), reason: o.reason }));
    });
  ctl.command('unpin').option('--reason <text>').description('release the pin (publishes live content if it differs)')
    .action(async (o: { reason?: string }) => {
      const c = ctx();
      op(c, await call(c, 'POST', '/unpin', { reason: o.reason }));
    });
  ctl.command('mode <mode>').description('make a config revision with proxy mode ipvs|nftables (optionally roll it out)')
    .option('--waves <spec>', 'start a rollout of the new revision').option('--pause-on-error').option('--reason <text>')
    .action(async (mode: string, o: { waves?: string; pauseOnError?: boolean; reason?: string }) => {
      if (mode !== 'ipvs' && mode !== 'nftables') throw new UsageError('mode must be ipvs or nftables');
      const c = ctx();
      op(c, await call(c, 'POST', '/mode', { mode, waves: o.waves, pauseOnError: !!o.pauseOnError, reason: o.reason }));
    });
}
