import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** One accepted token and who it stands for. */
export interface TokenEntry {
  readonly digest: Buffer;
  readonly identity: string;
}

/**
 * Reads a token file: one token a line, optionally followed by whitespace and the identity it
 * stands for ("s3cret alice"); blank lines and #-comments are skipped. Tokens are kept only as
 * SHA-256 digests so comparisons are constant-time over equal-length inputs.
 */
export function readTokenFile(file: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const [token, identity] = t.split(/\s+/, 2);
    out.push({ digest: digest(token!), identity: identity ?? `token-${i + 1}` });
  });
  if (out.length === 0) throw new Error(`${file}: no tokens`);
  return out;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The identity for an Authorization header, or undefined when it carries no accepted token. */
export function authenticate(tokens: readonly TokenEntry[], header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const d = digest(m[1]!);
  let found: string | undefined;
  // Compare against every entry (no early exit) so timing says nothing about which one matched.
  for (const t of tokens) if (timingSafeEqual(t.digest, d) && found === undefined) found = t.identity;
  return found;
}
