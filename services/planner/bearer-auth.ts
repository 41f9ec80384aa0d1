import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';

/** What a token may do: `viewer` reads, `operator` reads and operates (pin, rollout, config...). */
export type Role = 'viewer' | 'operator';
export const ROLES: readonly Role[] = ['viewer', 'operator'];

/** One accepted token and who it stands for. */
export interface TokenEntry {
  readonly digest: Buffer;
  readonly identity: string;
  readonly role: Role;
}

/** Who a request authenticated as. */
export interface Principal {
  readonly identity: string;
  readonly role: Role;
}

/** Identities become the recorded actor; keep them one plain word (no '/', which separates refinements). */
const IDENTITY = /^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,63}$/;

/**
 * Parses a token file: `TOKEN IDENTITY [ROLE]` a line, ROLE `viewer` (the default) or `operator`;
 * blank lines and #-comments are skipped. Any other line is an error naming file and line, so a
 * typo never silently grants or drops access. Tokens are kept only as SHA-256 digests so
 * comparisons are constant-time over equal-length inputs.
 */
export function parseTokenFile(text: string, file: string): TokenEntry[] {
  const out: TokenEntry[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const at = `${file}:${i + 1}`;
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    if (fields.length < 2 || fields.length > 3) {
      throw new Error(
        `${at}: expected "TOKEN IDENTITY [viewer|operator]", got ${fields.length} field${fields.length === 1 ? '' : 's'}`,
      );
    }
    const [token, identity, role = 'viewer'] = fields as [string, string, string?];
    if (!IDENTITY.test(identity))
      throw new Error(`${at}: identity ${JSON.stringify(identity)} must be letters, digits and . _ @ : + - (no /)`);
    if (!(ROLES as string[]).includes(role))
      throw new Error(`${at}: role ${JSON.stringify(role)} must be viewer or operator`);
    const key = digest(token).toString('hex');
    const dup = seen.get(key);
    if (dup !== undefined) throw new Error(`${at}: the same token is already on line ${dup}`);
    seen.set(key, i + 1);
    out.push({ digest: digest(token), identity, role: role as Role });
  });
  if (out.length === 0) throw new Error(`${file}: no tokens`);
  return out;
}

export function readTokenFile(file: string): TokenEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseTokenFile(text, file);
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The principal for an Authorization header, or undefined when it carries no accepted token. */
export function authenticate(tokens: readonly TokenEntry[], header: string | undefined): Principal | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const d = digest(m[1]!);
  let found: TokenEntry | undefined;
  // Compare against every entry (no early exit) so timing says nothing about which one matched.
  for (const t of tokens) if (timingSafeEqual(t.digest, d) && found === undefined) found = t;
  return found && { identity: found.identity, role: found.role };
}

export interface TokenFileWatch {
  /** The tokens in force: the last version of the file that parsed. */
  current(): readonly TokenEntry[];
  close(): void;
}

/**
 * Reads the token file and re-reads it whenever it changes (fs.watchFile polls its stat, which
 * also sees files replaced by rename, as editors and secret mounts do). A change that does not
 * parse keeps the tokens in force and reports the error: a typo must not lock operators out.
 * The first read throws, so a planner never starts with a broken file.
 */
export function watchTokenFile(
  file: string,
  o: { intervalMs?: number; onReload?(n: number): void; onError?(e: Error): void } = {},
): TokenFileWatch {
  let tokens = readTokenFile(file);
  const listener = (cur: Stats, prev: Stats) => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    try {
      tokens = readTokenFile(file);
      o.onReload?.(tokens.length);
    } catch (e) {
      o.onError?.(e as Error);
    }
  };
  watchFile(file, { interval: o.intervalMs ?? 1000, persistent: false }, listener);
  return { current: () => tokens, close: () => unwatchFile(file, listener) };
}
