import { consumerLimitRefusal, isTransientJetStreamError } from '../../libs/bus/index.ts';

/** How long a new leader retries one step of its claim at most, however long its lease holds. */
export const CLAIM_RETRY_MS = 30_000;

export interface ClaimRetry {
  /** Why the claim must stop now (the lease for this term is gone, the planner stops); undefined: go on. */
  readonly stopIf: () => string | undefined;
  /** Told about each transient failure before the pause. */
  readonly onRetry?: (line: string) => void;
  /** Give up this step after this long (default CLAIM_RETRY_MS). */
  readonly withinMs?: number;
  /** The first pause between tries (default 250 ms; doubles up to 2 s). */
  readonly pauseMs?: number;
}

/**
 * Runs one step of a new leader's claim (the replicated log's term marker, the versions stream's
 * term claim, the targets bucket's revisions), retried after a transient JetStream failure while
 * the lease for the term holds. After a NATS server dies, its streams elect new leaders (Raft: 4-9
 * s) and requests meanwhile go unanswered: giving the term up at the first timeout cost a request
 * timeout plus a TTL of hold-off per winner, and the next winner met the same (probe5 H1: 20-35 s
 * with no leader for a 6 s TTL). Every step is safe to repeat: its writes are conditional and carry
 * the same message id (a retry of an append that was stored is deduplicated), its reads are reads.
 * A failure that is not transient (a fence, a refusal) is not retried. The error names the step.
 */
export async function claimStep<T>(step: string, run: () => Promise<T>, o: ClaimRetry): Promise<T> {
  const t0 = performance.now();
  let pause = o.pauseMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      const msg = consumerLimitRefusal(e) ?? (e as Error).message; // a catch-up's consumer refused: which limit
      const tries = attempt === 1 ? '' : ` (${attempt} tries in ${Math.round((performance.now() - t0) / 1000)} s)`;
      const stop = o.stopIf();
      if (
        !isTransientJetStreamError(e) ||
        stop !== undefined ||
        performance.now() - t0 + pause > (o.withinMs ?? CLAIM_RETRY_MS)
      )
        throw new Error(`${step}: ${msg}${tries}${stop ? `; ${stop}` : ''}`, { cause: e });
      o.onRetry?.(`${step}: ${msg}; retrying (the lease is held)`);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 2000);
    }
  }
}
