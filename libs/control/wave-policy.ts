/**
 * How each wave of a config rollout is gated: how long it must stay healthy (bake), how long a
 * node may stay silent (wave timeout), how many failed nodes are tolerated (failure budget), and
 * before which waves a person must promote by hand. A plain value, persisted with the rollout;
 * no imports, so ctl can validate flags with it without loading the model's schemas.
 */
export interface WavePolicy {
  /** Milliseconds every wave must have all its nodes ACKed before the next wave starts. */
  readonly bakeMs: number;
  /** Milliseconds after a wave starts when a node of it that has not ACKed counts as failed. */
  readonly waveTimeoutMs: number;
  /** Failures tolerated over the whole rollout: a count (`2`) or a share of the fleet (`10%`). */
  readonly maxFailures: string;
  /** 1-based wave numbers (2 or more) that start only after `ctl rollout --promote`. */
  readonly pauseBefore: readonly number[];
}

/**
 * Defaults (docs/operations.md): no bake (a wave advances once it ACKed, as before policies
 * existed), a 10-minute wave timeout (a silent node no longer holds a rollout forever, yet a slow
 * node restarting its applier has time), no failure tolerated, no manual gate.
 */
export const DEFAULT_WAVE_POLICY: WavePolicy = { bakeMs: 0, waveTimeoutMs: 600_000, maxFailures: '0', pauseBefore: [] };

/** Longest bake or timeout accepted (a week): longer is a typo, and timers must stay 32-bit safe. */
const MAX_MS = 7 * 86_400_000;

/** Checks a failure budget as written (`0`, `3`, `10%`); throws naming `--max-failures`. */
export function parseMaxFailures(text: string): string {
  const t = text.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct && Number(pct[1]) <= 100) return t;
  if (/^\d+$/.test(t) && Number.isSafeInteger(Number(t))) return t;
  throw new Error(`max-failures: ${JSON.stringify(text)} must be a node count (0, 2) or a share of the fleet (10%)`);
}

/** Checks a list of gated waves (`2` or `2,4`); throws naming `--pause-before`. */
export function parsePauseBefore(text: string): number[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new Error('pause-before: name a wave number such as 2');
  return [
    ...new Set(
      parts.map((p) => {
        if (!/^\d+$/.test(p) || Number(p) < 2)
          throw new Error(
            `pause-before: ${JSON.stringify(p)} must be a wave number of 2 or more (wave 1 starts with the rollout)`,
          );
        return Number(p);
      }),
    ),
  ].sort((a, b) => a - b);
}

/**
 * Builds a policy from optional parts over the defaults; throws on a bad part, naming it. The API
 * and the pure functions both go through here, so a persisted policy was always valid.
 */
export function readWavePolicy(o: {
  bakeMs?: unknown;
  waveTimeoutMs?: unknown;
  maxFailures?: unknown;
  pauseBefore?: unknown;
}): WavePolicy {
  const ms = (v: unknown, name: string, min: number): number | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > MAX_MS) {
      throw new Error(`${name} must be whole milliseconds from ${min} to ${MAX_MS}`);
    }
    return v;
  };
  const bakeMs = ms(o.bakeMs, 'bakeMs', 0) ?? DEFAULT_WAVE_POLICY.bakeMs;
  const waveTimeoutMs = ms(o.waveTimeoutMs, 'waveTimeoutMs', 1) ?? DEFAULT_WAVE_POLICY.waveTimeoutMs;
  let maxFailures = DEFAULT_WAVE_POLICY.maxFailures;
  if (o.maxFailures !== undefined && o.maxFailures !== null) {
    if (typeof o.maxFailures !== 'string' && typeof o.maxFailures !== 'number')
      throw new Error('maxFailures must be a count such as 2 or a share such as "10%"');
    maxFailures = parseMaxFailures(String(o.maxFailures));
  }
  let pauseBefore = DEFAULT_WAVE_POLICY.pauseBefore;
  if (o.pauseBefore !== undefined && o.pauseBefore !== null) {
    const v = o.pauseBefore;
    if (typeof v === 'number') pauseBefore = parsePauseBefore(String(v));
    else if (typeof v === 'string') pauseBefore = parsePauseBefore(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'number')) pauseBefore = parsePauseBefore(v.join(','));
    else throw new Error('pauseBefore must be a wave number or a list of them');
  }
  return { bakeMs, waveTimeoutMs, maxFailures, pauseBefore };
}

/** How many failed nodes a policy tolerates in a fleet of `fleet` nodes (a share rounds down). */
export function allowedFailures(p: WavePolicy, fleet: number): number {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(p.maxFailures);
  return pct ? Math.floor((Number(pct[1]) * fleet) / 100) : Number(p.maxFailures);
}

/** `90000` -> `1m30s`: durations as operators wrote them, for reasons and status lines. */
export function formatMs(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  return parts.join('');
}
