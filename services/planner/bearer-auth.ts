import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { secretFileExposure } from '../../libs/bus/index.ts';

/** What a token may do: `viewer` reads, `operator` reads and operates (pin, rollout, config...). */
export type Role = 'viewer' | 'operator';
export const ROLES: readonly Role[] = ['viewer', 'operator'];

/** One accepted token and who it stands for. */
export interface TokenEntry {
  readonly digest: Buffer;
  readonly identity: string;
  readonly role: Role;
  /** Where it is written (`FILE:LINE`), for warnings about it. */
  readonly at: string;
  /** Shorter than MIN_TOKEN_LENGTH: accepted (refusing would lock out deployments), but warned about. */
  readonly weak: boolean;
}

/**
 * Tokens shorter than this are warned about at start and on every reload (review3 L1): 16
 * characters of `openssl rand -hex` are 64 bits. Refused they are not: the contract
 * (docs/operations.md) never asked for a length, and refusing would stop existing deployments
 * at their next start.
 */
export const MIN_TOKEN_LENGTH = 16;

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
    out.push({ digest: digest(token), identity, role: role as Role, at, weak: token.length < MIN_TOKEN_LENGTH });
  });
  if (out.length === 0) throw new Error(`${file}: no tokens`);
  return out;
}

export function readTokenFile(file: string): TokenEntry[] {
  return readTokens(file).tokens;
}

/**
 * The file's tokens and the mode of what was read (fstat of the open file: no window between
 * the check and the read). A file anyone may write is refused, as the signing key is: anyone
 * could add an operator token to it.
 */
function readTokens(file: string): { tokens: TokenEntry[]; mode: number } {
  let text: string;
  let mode: number;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    mode = fstatSync(fd).mode;
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    throw new TokenFileError(file, e as NodeJS.ErrnoException);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (mode & 0o002)
    throw new Error(`token file ${file}: mode ${octal(mode)} lets anyone add a token; chmod 600 ${file}`);
  return { tokens: parseTokenFile(text, file), mode };
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, '0');

/** The token file could not be read; `removed` when it is not there (ENOENT, or its directory is gone). */
export class TokenFileError extends Error {
  readonly removed: boolean;
  constructor(file: string, e: NodeJS.ErrnoException) {
    super(`token file ${file}: ${e.code ?? e.message}`);
    this.removed = e.code === 'ENOENT' || e.code === 'ENOTDIR';
  }
}

/** One warning line a token shorter than MIN_TOKEN_LENGTH, naming where it is written. */
export function weakTokenWarnings(tokens: readonly TokenEntry[]): string[] {
  return tokens
    .filter((t) => t.weak)
    .map(
      (t) =>
        `${t.at}: the token of ${t.identity} is shorter than ${MIN_TOKEN_LENGTH} characters and can be guessed; use a long random one (openssl rand -hex 24)`,
    );
}

/** A warning when the file's mode lets others read it or its group write it (secretFileExposure), else undefined. */
export function openModeWarning(file: string, mode: number): string | undefined {
  const exposure = secretFileExposure(mode);
  if (exposure === undefined) return undefined;
  return `token file ${file} is ${exposure} (mode ${octal(mode)}): whoever can read it can use its tokens; chmod 600 ${file}`;
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
  /** The tokens in force: the last version of the file that parsed; none once it was removed. */
  current(): readonly TokenEntry[];
  /** Why no token is in force (the file was removed), or undefined while the file's tokens are. */
  revoked(): string | undefined;
  close(): void;
}

/**
 * Reads the token file and re-reads it whenever it changes (its stat is polled, which also sees
 * files replaced by rename, as editors and secret mounts do). What it says goes to `say`:
 *
 * - a removed file (ENOENT) revokes every token: removing it is how an operator locks the API in
 *   a hurry, so keeping the removed file's tokens would defeat it (review3 L1). Said once; the
 *   tokens come back when a file that parses does;
 * - a change that cannot be read (not a file, no permission) or does not parse keeps the tokens
 *   in force and says so: a typo must not lock operators out;
 * - a token shorter than MIN_TOKEN_LENGTH is warned about at start and on each reload, naming its
 *   line; a file others may read or its group write once each time it becomes so (at start included).
 *
 * The first read throws, so a planner never starts with a missing or broken file.
 */
export function watchTokenFile(
  file: string,
  o: { intervalMs?: number; say?(line: string): void } = {},
): TokenFileWatch {
  const say = o.say ?? (() => {});
  let revoked: string | undefined;
  let wasOpen = false;
  let tokens: readonly TokenEntry[] = [];
  /** Reads the file into force; what to say about it (said by the caller after its own line). */
  const load = (): string[] => {
    const read = readTokens(file);
    tokens = read.tokens;
    revoked = undefined;
    const warning = openModeWarning(file, read.mode);
    const out = warning && !wasOpen ? [warning] : [];
    wasOpen = warning !== undefined;
    return [...out, ...weakTokenWarnings(tokens)];
  };
  // Polled by stat (not fs.watch, which loses a file replaced by rename), compared with what was
  // seen last rather than with the poller's own first look: fs.watchFile takes that asynchronously
  // and missed a change made in between. ctime is in: a chmod alone is looked at too.
  const look = (): string => {
    try {
      const st = statSync(file);
      return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`;
    } catch (e) {
      return `error ${(e as NodeJS.ErrnoException).code}`;
    }
  };
  let seen = look(); // before the read: a change in between is read again at the first poll
  for (const line of load()) say(line);
  const poll = () => {
    const now = look();
    if (now === seen) return;
    seen = now;
    try {
      const warnings = load();
      say(`token file ${file} reloaded: ${tokens.length} token${tokens.length === 1 ? '' : 's'}`);
      for (const line of warnings) say(line);
    } catch (e) {
      if (e instanceof TokenFileError && e.removed) {
        if (revoked === undefined)
          say(`token file ${file} removed: every token is revoked, the API answers 401 until a file is back`);
        tokens = [];
        revoked = 'the token file was removed: no token is in force';
        wasOpen = false;
      } else if (revoked !== undefined) say(`${(e as Error).message}; still no token in force`);
      else say(`${(e as Error).message}; keeping the tokens in force`);
    }
  };
  const timer = setInterval(poll, o.intervalMs ?? 1000);
  timer.unref();
  return { current: () => tokens, revoked: () => revoked, close: () => clearInterval(timer) };
}
