import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { readProxyConfig, type ProxyConfig } from '../../libs/model/index.ts';
import { UsageError } from './cli-errors.ts';

/** Proxy config from an optional YAML/JSON file, with command-line overrides on top. */
export function loadProxyConfig(file: string | undefined, overrides: Record<string, unknown>): ProxyConfig {
  let base: Record<string, unknown> = {};
  if (file) {
    let parsed: unknown;
    try {
      parsed = parse(readFileSync(file, 'utf8'));
    } catch (e) {
      // A missing or unreadable file, or bad YAML, named by the flag that gave it.
      throw new UsageError(`--config ${file}: ${(e as Error).message.split('\n')[0]!.replace(/:\s*$/, '')}`);
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
      base = parsed as Record<string, unknown>;
    else throw new UsageError(`${file}: proxy config must be a YAML/JSON object`);
  }
  const merged = { ...base };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;
  try {
    return readProxyConfig(merged);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}
