import { Option } from 'commander';
import { DEFAULT_MAX_MANIFEST_BYTES } from '../../libs/kube/index.ts';
import { UsageError } from './cli-errors.ts';

/** `--max-manifest-bytes N`: manifest files larger than N bytes are refused (plan, apply, planner). */
export const maxManifestBytesOption = () =>
  new Option('--max-manifest-bytes <n>', 'refuse manifest files larger than this many bytes').default(
    String(DEFAULT_MAX_MANIFEST_BYTES),
  );

export function parseMaxManifestBytes(value: string | undefined): number {
  const n = Number(value ?? DEFAULT_MAX_MANIFEST_BYTES);
  if (value !== undefined && (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1)) {
    throw new UsageError(`--max-manifest-bytes must be a whole number of bytes, got ${JSON.stringify(value)}`);
  }
  return n;
}
