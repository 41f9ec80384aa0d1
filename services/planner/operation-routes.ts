import { parseWaves, readWavePolicy, type WavePolicy, type WaveSpec } from '../../libs/control/index.ts';
import { readProxyConfig, type ProxyConfig } from '../../libs/model/index.ts';
import type { ApiRoute, RouteCall } from './http-api.ts';
import { HttpError, type Body } from './http-error.ts';
import { NotCommittedError, type Planner } from './planner.ts';
import type { RefusalRecorder } from './refused-operations.ts';

/** How a rollout is to run, as the API accepts it for /rollout, /mode and /config. */
export interface RolloutRequest {
  readonly waves: WaveSpec[];
  readonly pauseOnError: boolean;
  readonly policy: WavePolicy;
}

const POLICY_FIELDS = ['bakeMs', 'waveTimeoutMs', 'maxFailures', 'pauseBefore'] as const;

/** Whether a /mode or /config body asks for a rollout (waves or any wave-policy field). */
export function asksForRollout(b: Body): boolean {
  return b.waves !== undefined || POLICY_FIELDS.some((f) => b[f] !== undefined);
}

/**
 * The one place the API reads rollout settings from a request body: `waves`, `pauseOnError` and
 * the wave policy (`bakeMs`, `waveTimeoutMs`, `maxFailures`: "2" or "10%", `pauseBefore`: [2]).
 */
export function readRolloutRequest(b: Body, defaultWaves = '100%'): RolloutRequest {
  if (b.waves !== undefined && typeof b.waves !== 'string')
    throw new HttpError(400, 'waves must be a string such as "1,10%,50%,100%"');
  if (b.pauseOnError !== undefined && typeof b.pauseOnError !== 'boolean')
    throw new HttpError(400, 'pauseOnError must be true or false');
  let waves: WaveSpec[];
  try {
    waves = parseWaves(b.waves ?? defaultWaves);
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  let policy: WavePolicy;
  try {
    policy = readWavePolicy(b);
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  return { waves, pauseOnError: b.pauseOnError === true, policy };
}

const positive = (v: unknown, name: string): number => {
  // Digits only in a string: Number() also reads "0x1", "1e0" and " 1 " as 1.
  const n = typeof v === 'string' ? (/^[0-9]+$/.test(v) ? Number(v) : Number.NaN) : v;
  if (!Number.isSafeInteger(n) || (n as number) < 1) throw new HttpError(400, `${name} must be a positive integer`);
  return n as number;
};
const optPositive = (v: unknown, name: string) =>
  v === undefined || v === null || v === '' ? undefined : positive(v, name);
/** `expectPin`: the pinned version the sender saw, 0 for none (K2); absent: not checked. */
const expectPin = (b: Body): number | undefined => {
  const v = b.expectPin;
  if (v === undefined || v === null || v === '') return undefined;
  if (v === 0 || v === '0') return 0;
  return positive(v, 'expectPin');
};
const optFlag = (v: unknown, name: string): boolean => {
  if (v !== undefined && v !== null && typeof v !== 'boolean')
    throw new HttpError(400, `${name} must be true or false`);
  return v === true;
};

const ROLLOUT_FIELDS = ['waves', 'pauseOnError', ...POLICY_FIELDS] as const;

/**
 * The fields each operation takes. Any other is a 400 naming it: ignored, a typo changed what was
 * done (`{"toversion": 45}` on /rollback rolled the cluster's config back instead of pinning version
 * 45; found from outside, 2026-12-07).
 */
const OPERATION_FIELDS: Record<string, readonly string[]> = {
  '/pin': ['version', 'expectPin'],
  '/unpin': ['expectPin'],
  '/rollback': ['toVersion', 'configRevision', 'fromRevision', 'rollout', 'force', 'expectPin'],
  '/rollout': ['configRevision', 'pause', 'resume', 'promote', 'force', ...ROLLOUT_FIELDS],
  '/mode': ['mode', ...ROLLOUT_FIELDS],
  '/config': ['change', ...ROLLOUT_FIELDS],
};

/** Refuses a body field the operation does not take (every operation takes `reason`). */
function onlyKnownFields(path: string, b: Body): void {
  const known = OPERATION_FIELDS[path] ?? [];
  const unknown = Object.keys(b).filter((k) => k !== 'reason' && !known.includes(k));
  if (unknown.length > 0)
    throw new HttpError(
      400,
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}: POST ${path} takes ${[...known, 'reason'].join(', ')}`,
    );
}

/** Validates a config change over the current default; a bad field is a 400 naming it. */
function checkedChange(p: Planner, change: unknown): Body {
  if (!change || typeof change !== 'object' || Array.isArray(change))
    throw new HttpError(400, 'config change must be an object of fields');
  if (Object.keys(change).length === 0) throw new HttpError(400, 'config change names no field');
  try {
    readProxyConfig({ ...p.config.defaultConfig(), ...(change as Body) });
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  return change as Body;
}

/**
 * An operation this planner committed locally but not (known to be) in the group's log is not
 * done: 503, the planner's line names why and what to do (ctl prints it and exits 1).
 */
async function unlessNotCommitted(run: () => unknown): Promise<unknown> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof NotCommittedError) throw new HttpError(503, e.message);
    throw e;
  }
}

/**
 * Operations: each needs an operator token and is recorded with actor and reason; with `refusals`,
 * a refused one is recorded too (refused-operations.ts, probe11 K5).
 */
export function operationRoutes(p: Planner, refusals?: RefusalRecorder): ApiRoute[] {
  return operationRouteList(p).map((r) => {
    const route = {
      ...r,
      handle: (call: RouteCall) =>
        unlessNotCommitted(() => {
          onlyKnownFields(r.path, call.body);
          return r.handle(call);
        }),
    };
    return refusals ? refusals.route(route) : route;
  });
}

function operationRouteList(p: Planner): ApiRoute[] {
  const configChange = async (
    change: Body,
    b: Body,
    who: Parameters<Planner['configChange']>[1],
    kind: 'mode' | 'config',
  ) => {
    const previous: ProxyConfig = p.config.defaultConfig();
    const previousDefault = p.config.state.defaultRevision;
    const newest = p.config.newestRevision();
    const r = asksForRollout(b) ? readRolloutRequest(b) : undefined;
    const out = await p.configChange(change, who, kind, r);
    // an existing revision answered (the default: nothing changed; another: its values asked again)
    return { ...out, previous, previousDefault, reused: out.revision <= newest };
  };
  return [
    {
      method: 'POST',
      path: '/pin',
      access: 'operate',
      handle: ({ body, who }) => p.pin(positive(body.version, 'version'), who, 'pin', expectPin(body)),
    },
    { method: 'POST', path: '/unpin', access: 'operate', handle: ({ body, who }) => p.unpin(who, expectPin(body)) },
    {
      method: 'POST',
      path: '/rollback',
      access: 'operate',
      handle: ({ body, who }) => {
        if (body.toVersion !== undefined && body.toVersion !== null)
          return p.pin(positive(body.toVersion, 'toVersion'), who, 'rollback', expectPin(body));
        // K2: what the sender saw (the default, the rollout it means to stop); absent: not checked
        const expect = {
          fromRevision: optPositive(body.fromRevision, 'fromRevision'),
          rollout: optPositive(body.rollout, 'rollout'),
        };
        const expected = expect.fromRevision !== undefined || expect.rollout !== undefined;
        return p.rollbackConfig(optPositive(body.configRevision, 'configRevision'), who, {
          ...(expected ? { expect } : {}),
          force: optFlag(body.force, 'force'),
        });
      },
    },
    {
      method: 'POST',
      path: '/rollout',
      access: 'operate',
      handle: ({ body, who }) => {
        // "true" (a string) read as false started a rollout of every node instead of pausing one
        if (optFlag(body.resume, 'resume')) return p.rollout({ resume: true }, who);
        if (optFlag(body.pause, 'pause')) return p.rollout({ pause: true }, who);
        if (optFlag(body.promote, 'promote')) return p.rollout({ promote: true }, who);
        return p.rollout(
          {
            revision: optPositive(body.configRevision, 'configRevision'),
            ...readRolloutRequest(body),
            force: optFlag(body.force, 'force'),
          },
          who,
        );
      },
    },
    {
      method: 'POST',
      path: '/mode',
      access: 'operate',
      handle: ({ body, who }) => {
        if (body.mode !== 'ipvs' && body.mode !== 'nftables') throw new HttpError(400, 'mode must be ipvs or nftables');
        return configChange({ mode: body.mode }, body, who, 'mode');
      },
    },
    {
      method: 'POST',
      path: '/config',
      access: 'operate',
      handle: ({ body, who }) => configChange(checkedChange(p, body.change), body, who, 'config'),
    },
  ];
}
