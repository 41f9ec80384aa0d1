/**
 * The group signing key applied to the replicated log: how the leader signs each message and
 * snapshot it writes, and how every replica checks those it reads (probe10 H11). Its own module
 * because the leader side (replication.ts) signs, the follower side (log-follower.ts) checks, and
 * the snapshot store (replication-snapshots.ts) is handed both; each over a statement made here.
 */
// A deep import kept on purpose (test/build/import-boundaries.test.ts says why):
// planner-signature.ts imports no lib that imports this one.
import { logMessageStatement, logSnapshotStatement, verifierFromPem, type Signer } from '../bus/planner-signature.ts';
import type { LogCheck, LogSign } from './replication-codec.ts';
import type { SnapshotCheck, SnapshotSign, SnapshotSigned } from './replication-snapshots.ts';

export interface LogSigning {
  /** Signs a message the leader appends (undefined: no key, nothing signed). */
  readonly sign: LogSign;
  /** Checks a message read (undefined: no key, nothing checked). */
  readonly check: LogCheck;
  /** The group key's signature on the snapshots it writes, and the check of those it reads (as for messages). */
  readonly snapshotSigning: { sign?: SnapshotSign; check?: SnapshotCheck };
}

/** `signingSeq`: the stream seq the message being encoded will land at (its first part's): signed with it. */
export function logSigning(group: string, signer: Signer | undefined, signingSeq: () => number): LogSigning {
  const statement = (m: Parameters<NonNullable<LogSign>>[0], seq: number) => logMessageStatement({ ...m, group, seq });
  const sign: LogSign = signer && ((m) => signer.sign(statement(m, signingSeq())));
  const verifier = signer && verifierFromPem(signer.publicKeyPem, 'log signing key');
  const check: LogCheck =
    verifier &&
    ((m, sig) =>
      !sig
        ? "not signed (no Sb-Log-Sig header: not this group's leader, or a release before signed logs)"
        : verifier.verify(statement(m, m.seq), sig)
          ? undefined
          : "its signature is not the group's signing key's over it (forged, altered, or replayed at another seq)");
  let snapshotSigning: LogSigning['snapshotSigning'] = {};
  if (signer && verifier) {
    const of = (m: SnapshotSigned) => logSnapshotStatement({ ...m, group });
    snapshotSigning = {
      sign: (m) => signer.sign(of(m)),
      check: (m, sig) =>
        !sig
          ? "not signed (no sig in its metadata: not this group's leader's, or a release before signed snapshots)"
          : verifier.verify(of(m), sig)
            ? undefined
            : "its signature is not the group's signing key's over it (forged, altered, or renamed)",
    };
  }
  return { sign, check, snapshotSigning };
}
