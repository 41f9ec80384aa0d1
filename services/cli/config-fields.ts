import { DEFAULT_PROXY_CONFIG, readProxyConfig, type ProxyConfig } from '../../libs/model/proxy-config.ts'; // not the barrel: ctl must not load the wire schemas (zod)
import { UsageError } from './cli-errors.ts';
import { parseDuration } from './flag-values.ts';

/** The proxy-config fields `ctl config set` accepts: every field of ProxyConfig. */
export const CONFIG_FIELDS = Object.keys(DEFAULT_PROXY_CONFIG) as (keyof ProxyConfig)[];

const SCHEDULER_FLAGS = ['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port'];

/**
 * Reads `KEY=VALUE` as typed by an operator into a typed config change: booleans `true|false`,
 * timeouts in whole seconds or as a duration (`15m`), lists comma-separated (empty = none).
 * Each value is validated as the planner will (readProxyConfig); the planner checks again, with
 * the current config, when it makes the revision. Errors are usage errors naming the key.
 */
export function parseConfigAssignments(args: readonly string[]): Partial<Record<keyof ProxyConfig, unknown>> {
  if (args.length === 0) throw new UsageError(`config set: give KEY=VALUE (keys: ${CONFIG_FIELDS.join(', ')})`);
  const change: Partial<Record<keyof ProxyConfig, unknown>> = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new UsageError(`config set: expected KEY=VALUE, got ${JSON.stringify(arg)}`);
    const key = arg.slice(0, eq) as keyof ProxyConfig;
    const text = arg.slice(eq + 1).trim();
    if (!CONFIG_FIELDS.includes(key))
      throw new UsageError(`config set: unknown key ${key} (keys: ${CONFIG_FIELDS.join(', ')})`);
    if (key in change) throw new UsageError(`config set: ${key} given twice`);
    change[key] = typed(key, text);
  }
  return change;
}

function typed(key: keyof ProxyConfig, text: string): unknown {
  const bad = (want: string) => new UsageError(`config set ${key}=${text}: ${want}`);
  const model = DEFAULT_PROXY_CONFIG[key];
  let value: unknown;
  if (typeof model === 'boolean') {
    if (text !== 'true' && text !== 'false') throw bad('expected true or false');
    value = text === 'true';
  } else if (typeof model === 'number') {
    const secs = /^\d+$/.test(text) ? Number(text) : (parseDuration(text) ?? NaN) / 1000;
    if (!Number.isInteger(secs)) throw bad('expected whole seconds or a duration such as 15m');
    value = secs;
  } else if (Array.isArray(model)) {
    value = text === '' ? [] : text.split(',').map((s) => s.trim());
  } else {
    value = text;
  }
  if (key === 'schedulerFlags') {
    const unknown = (value as string[]).find((f) => !SCHEDULER_FLAGS.includes(f));
    if (unknown) throw bad(`unknown scheduler flag ${unknown} (one of ${SCHEDULER_FLAGS.join(', ')})`);
    return value;
  }
  try {
    readProxyConfig({ [key]: value });
  } catch (e) {
    throw bad((e as Error).message.replace(/^proxy config: /, ''));
  }
  return value;
}

/** `mode ipvs → nftables, scheduler rr → wrr`: the fields that differ between two configs. */
export function describeConfigChange(before: Record<string, unknown>, after: Record<string, unknown>): string {
  const show = (v: unknown) =>
    Array.isArray(v) ? (v.length ? v.join(',') : '(none)') : v === '' ? '(none)' : String(v);
  return Object.keys(after)
    .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => `${k} ${show(before[k])} → ${show(after[k])}`)
    .join(', ');
}
