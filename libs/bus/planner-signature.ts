import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { sha256Hex, type NoticeDelta, type SignedTarget } from '../model/index.ts';
import { deltaSubject, H } from './subjects.ts';
import { secretFileExposure } from './secret-file-mode.ts';

/**
 * The planner's Ed25519 signature on what it puts on the bus, so that nothing else on the bus
 * (a node with its own credentials, a client on an open server, a replayed old message) can move
 * a node. Every signed statement is a text of newline-separated fields with a leading tag, so
 * a signature for one kind of statement can never be read as another.
 *
 *   target     sb-target / KV key / version / configRevision / issued   (or "cleared" for both numbers)
 *   artifact   sb-artifact / subject / version / parent / hash / anchor / sha256(payload)
 *   config     sb-config / revision / hash
 *   notice     sb-notice / <the target statement> / <the artifact statement of the carried delta>
 *   notice patch  sb-notice-patch / <the target statement> / version / parent / hash / anchor /
 *              sha256(patch payload)   (a notice carrying the version as patches, service-patch.ts;
 *              the only signature a patch has: it is never stored)
 *   term       sb-term / term / planner id / at   (a new leader's claim on the versions stream; the
 *              release before's form, still signed for its planners, see version-publisher.ts)
 *   group term sb-group-term / group / term / planner id / at   (the same claim naming its group)
 *   lease      sb-lease / group / id / host / pid / term / since / renewedAt / api   (the group's leader
 *              lease record, planner-lease.ts: a record that does not verify names no leader)
 *   log        sb-log / group / kind / term / seq / rows / sha256(payload)   (a message of the group's
 *              replicated log stream: a batch (kind rows; seq is its first part's, the payload all parts
 *              joined) or a term marker (kind term); replication.ts)
 *   snapshot   sb-log-snapshot / group / seq / term / rows / format / digest   (a snapshot of the group's
 *              log in its object store: the object's SHA-256 digest as the store names it, which its
 *              reader checks the chunks against; replication-snapshots.ts)
 *
 * The notice statement lets a node verify one signature per event instead of two (the target's
 * and the delta's) when the default target's notice carries the version's delta; both parts keep
 * their own signatures too, for the KV bucket, the stream and appliers of earlier releases.
 */
export interface Signer {
  sign(statement: string): string;
  readonly publicKeyPem: string;
}

export interface Verifier {
  verify(statement: string, sig: string): boolean;
  /** Short fingerprints of the keys trusted (SHA-256 of each key's SPKI DER, 16 hex digits), for logs. */
  readonly fingerprints?: readonly string[];
}

export function targetStatement(
  key: string,
  t: { version: number; configRevision: number } | 'cleared',
  issued: number,
): string {
  return t === 'cleared'
    ? `sb-target\n${key}\ncleared\ncleared\n${issued}`
    : `sb-target\n${key}\n${t.version}\n${t.configRevision}\n${issued}`;
}

/** A leader's claim on the versions stream for its term, without its group: the release before's form. */
export function termClaimStatement(c: { term: number; id: string; at: string }): string {
  return `sb-term\n${c.term}\n${c.id}\n${c.at}`;
}

/**
 * A leader's claim on the versions stream for its group's term (version-publisher.ts `claim`):
 * terms are the revisions of each group's own lease bucket, so a claim says whose term it is.
 */
export function groupTermClaimStatement(c: { group: string; term: number; id: string; at: string }): string {
  return `sb-group-term\n${c.group}\n${c.term}\n${c.id}\n${c.at}`;
}

/**
 * A planner's leader lease record (planner-lease.ts) in its group's lease bucket: without it, anyone
 * with the planner's NATS user wrote a record that deposed the leader and named its own API as
 * where writes (and the operator token) go (probe10 H4). `term` as written (0 in a claim, the
 * claim's revision from the next write on); `api` empty when none is advertised.
 */
export function leaseStatement(l: {
  group: string;
  id: string;
  host: string;
  pid: number;
  term: number;
  since: string;
  renewedAt: string;
  api?: string | undefined;
}): string {
  return `sb-lease\n${l.group}\n${l.id}\n${l.host}\n${l.pid}\n${l.term}\n${l.since}\n${l.renewedAt}\n${l.api ?? ''}`;
}

/**
 * A message of a group's replicated log stream (libs/eventlog/replication.ts): its content (the
 * payload's digest and the rows it leaves the group at), its group, its term and the stream seq it
 * lands at (appends are conditional on the seq before, so the leader knows it), so a signed batch
 * or marker cannot be replayed at another seq, into another group or under another term.
 */
export function logMessageStatement(
  m: { group: string; kind: 'rows' | 'term'; term: number; seq: number; rows: string } & (
    | {
        payload: Uint8Array;
        /** payloadDigest(payload) when the caller took it already (a large batch's, as it was made). */
        payloadDigest?: string;
      }
    /** A batch read in parts: the digest its reader took of them as they came. */
    | { payload?: undefined; payloadDigest: string }
  ),
): string {
  const digest = m.payload === undefined ? m.payloadDigest : (m.payloadDigest ?? payloadDigest(m.payload));
  return `sb-log\n${m.group}\n${m.kind}\n${m.term}\n${m.seq}\n${m.rows}\n${digest}`;
}

/**
 * A snapshot of a group's replicated log (libs/eventlog/replication-snapshots.ts), object `seq-<seq>`:
 * its content by the object store's digest (`SHA-256=…` of the stored bytes, checked by the
 * reader against every chunk), and the metadata a reader acts on, so a signed snapshot cannot be
 * altered, renamed to another seq, moved into another group or given another term.
 */
export function logSnapshotStatement(s: {
  group: string;
  seq: number;
  term: number;
  rows: string;
  format: string;
  digest: string;
}): string {
  return `sb-log-snapshot\n${s.group}\n${s.seq}\n${s.term}\n${s.rows}\n${s.format}\n${s.digest}`;
}

/** `payload` as bytes, or as text (hashed as its UTF-8 bytes: the same digest as the bytes it was decoded from). */
export function artifactStatement(a: {
  subject: string;
  version: number;
  parent: number;
  hash: string;
  anchor: string;
  payload: Uint8Array | string;
}): string {
  return `sb-artifact\n${a.subject}\n${a.version}\n${a.parent}\n${a.hash}\n${a.anchor}\n${payloadDigest(a.payload)}`;
}

/**
 * SHA-256 (hex) of an artifact's payload; text is hashed as UTF-8. One-shot (sha256Hex): every
 * node computes this for every event, and a Hash object per call cost more than the digest.
 */
export function payloadDigest(payload: Uint8Array | string): string {
  return sha256Hex(payload);
}

/** One statement over a target notice and the delta it carries (see the table at the top). */
export function noticeStatement(target: string, artifact: string): string {
  return `sb-notice\n${target}\n${artifact}`;
}

/**
 * The notice statement for the target entry of KV key `key` and the delta carried with it, built
 * from the carried headers and payload exactly as a node checks them one by one (the delta's
 * subject follows from its version header). Undefined when the delta has no version header.
 */
export function targetNoticeStatement(key: string, entry: SignedTarget, delta: NoticeDelta): string | undefined {
  const version = Number(delta.headers[H.version]);
  if (!Number.isSafeInteger(version) || version < 1) return undefined;
  return noticeStatement(
    targetStatement(key, 'cleared' in entry ? 'cleared' : entry, entry.issued),
    artifactStatement({
      subject: deltaSubject(version),
      version,
      parent: Number(delta.headers[H.parent]),
      hash: delta.headers[H.hash] ?? '',
      anchor: delta.headers[H.anchor] ?? '',
      payload: delta.payload,
    }),
  );
}

/**
 * The statement over a target entry and the patched delta its notice carries (`patch`), from the
 * carried headers and payload as a node checks them. Undefined when the patch has no version header.
 */
export function targetPatchStatement(key: string, entry: SignedTarget, patch: NoticeDelta): string | undefined {
  const version = Number(patch.headers[H.version]);
  if (!Number.isSafeInteger(version) || version < 1) return undefined;
  const target = targetStatement(key, 'cleared' in entry ? 'cleared' : entry, entry.issued);
  const h = patch.headers;
  return `sb-notice-patch\n${target}\n${version}\n${Number(h[H.parent])}\n${h[H.hash] ?? ''}\n${h[H.anchor] ?? ''}\n${payloadDigest(patch.payload)}`;
}

export function configStatement(revision: number, hash: string): string {
  return `sb-config\n${revision}\n${hash}`;
}

export function signerFromKey(privateKey: KeyObject): Signer {
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new Error(`signing key is ${privateKey.asymmetricKeyType}, not ed25519`);
  const publicKeyPem = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  return {
    publicKeyPem,
    sign: (s) => sign(null, Buffer.from(s), privateKey).toString('base64'),
  };
}

/**
 * A verifier trusting every Ed25519 public key in `pem`: one PEM block, or several (a bundle, like a
 * CA bundle) so that the planner's key can be rotated without a window in which nodes drop every
 * target: appliers first trust the old and the new key, then the planners switch, then the old
 * key is dropped (docs/distribution.md, "Rotating the signing key"). A signature verifies when any
 * trusted key verifies it; the key that verified last is tried first, so a bundle costs one check
 * per signature once the fleet signs with one key.
 */
export function verifierFromPem(pem: string, what = 'planner key'): Verifier {
  const blocks = pem.match(PEM_BLOCK) ?? [pem];
  const keys: KeyObject[] = [];
  const fingerprints: string[] = [];
  blocks.forEach((block, i) => {
    const which = blocks.length > 1 ? `${what} (PEM block ${i + 1} of ${blocks.length})` : what;
    // createPublicKey would derive the public half of a private key: a node must never hold the
    // planner's private key (it could sign targets), so one given by mistake is refused, not used.
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(block))
      throw new Error(`${which}: a private key; give appliers the planner's .pub file`);
    let key: KeyObject;
    try {
      key = createPublicKey(block);
    } catch (e) {
      throw new Error(`${which}: not a PEM public key (${(e as Error).message})`);
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw new Error(`${which}: ${key.asymmetricKeyType} key, ed25519 expected`);
    const fingerprint = sha256Hex(key.export({ type: 'spki', format: 'der' })).slice(0, 16);
    if (fingerprints.includes(fingerprint)) return; // the same key twice: trusted once
    keys.push(key);
    fingerprints.push(fingerprint);
  });
  let last = 0;
  return {
    fingerprints,
    verify: (s, sig) => {
      const data = Buffer.from(s);
      const signature = Buffer.from(sig, 'base64');
      for (let n = 0; n < keys.length; n++) {
        const k = (last + n) % keys.length;
        if (verifiesWith(keys[k]!, data, signature)) {
          last = k;
          return true;
        }
      }
      return false;
    },
  };
}

/** One PEM block of any type: a bundle's blocks are checked one by one. */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

function verifiesWith(key: KeyObject, data: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}

/** Reads the planner's public key (`applier --planner-key FILE`). */
export function readVerifierFile(file: string): Verifier {
  let pem: string;
  try {
    // reading a FIFO blocks until a writer comes: the applier hung silently (probe10 H10)
    if (!statSync(file).isFile()) throw new Error('not a regular file');
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--planner-key ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return verifierFromPem(pem, `--planner-key ${file}`);
}

/**
 * Loads the planner's private key (PKCS#8 PEM), creating it (mode 0600) when missing, and
 * (re)writes FILE.pub with the public key for appliers. Creation is atomic (temp + rename), so a
 * crash never leaves a half-written key that a restart would refuse. An existing key writable by
 * anyone is refused; one others may read or its group write is used with a warning (a Kubernetes Secret
 * mounts 0644 unless defaultMode says otherwise). `say` gets those lines and the one saying a key
 * was created: appliers holding another key drop every target until given FILE.pub (probe3 U3).
 */
export function loadOrCreateSigningKey(
  file: string,
  o: { say?: (line: string) => void; logHasVersions?: boolean } = {},
): Signer {
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeAtomically(file, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    o.say?.(
      `created signing key ${file}; appliers need ${file}.pub as --planner-key` +
        (o.logHasVersions
          ? ' (the log already holds versions: appliers given an earlier key drop every target until they get this one)'
          : ''),
    );
  }
  const signer = signerFromKey(readSigningKeyFile(file, o.say));
  const pub = `${file}.pub`;
  // tmp + rename: an applier waiting for this file never reads it half-written
  if (!existsSync(pub) || readFileSync(pub, 'utf8') !== signer.publicKeyPem)
    writeAtomically(pub, signer.publicKeyPem, 0o644);
  return signer;
}

/**
 * Writes through a fresh temp file beside `file`, then renames: the temp name is random and
 * opened O_EXCL ('wx'), so a file or symlink planted at a guessable name is never followed or
 * reused (review3 L1: the key was written through a planted link to a world-readable file).
 */
function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Where the planner keeps its key when --signing-key is not given: beside the log. */
/**
 * An existing signing key as the planner reads it: refused when anyone may write it or it is not a
 * PEM private key, one line naming the file (`planner` checks it so before anything starts: bad
 * input, exit 2); `say` gets the warning for a key others may read or its group write.
 */
export function readSigningKeyFile(file: string, say?: (line: string) => void): KeyObject {
  const st = statSync(file);
  // reading a FIFO blocks until a writer comes: the planner hung silently (probe10 H10)
  if (!st.isFile()) throw new Error(`signing key ${file}: not a regular file`);
  const mode = st.mode & 0o777;
  const octal = mode.toString(8).padStart(4, '0');
  if (mode & 0o002) throw new Error(`signing key ${file}: mode ${octal} lets anyone replace it; chmod 600 it`);
  const exposure = secretFileExposure(mode);
  if (exposure) say?.(`warning: signing key ${file} is ${exposure} (mode ${octal}); chmod 600 it`);
  try {
    return createPrivateKey(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`signing key ${file}: not a PEM private key (${(e as Error).message})`);
  }
}

export function defaultSigningKeyFile(db: string): string {
  return `${db}.signing-key.pem`;
}
