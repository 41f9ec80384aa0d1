import type { HealthVerdict, HealthVerdictWord, ProbeReport } from '../model/index.ts';

/** What a probe round came to: a report, no probe possible (and why), or a test-injected verdict. */
export type ProbeOutcome =
  | { readonly kind: 'report'; readonly report: ProbeReport }
  | { readonly kind: 'unavailable'; readonly reason: string }
  | { readonly kind: 'injected'; readonly verdict: HealthVerdictWord; readonly reason: string };

/** A data-path probe: never throws, answers what it found about the state as programmed. */
export interface HealthProbe {
  probe(state: import('../model/index.ts').NodeState): Promise<ProbeOutcome>;
}

/**
 * The verdict from its two parts. Healthy needs the programmed state read back equal to the
 * desired hash AND a probe in which every attempted virtual server answered through the
 * dataplane. A probe that could not run, or found no virtual server whose endpoint answered
 * directly, makes the node `unprobed`: it says so and is never counted healthy by probe. Pure.
 */
export function judgeHealth(o: {
  stateVerified: boolean;
  /** Why the state is not verified (the reason then names it); default: the read-back differed. */
  stateProblem?: string;
  outcome: ProbeOutcome;
  at: string;
}): HealthVerdict {
  const { outcome, at } = o;
  const probe = outcome.kind === 'report' ? outcome.report : null;
  // Bounded as the wire schema bounds it: an over-long reason would make the planner drop the whole message.
  const v = (verdict: HealthVerdictWord, reason: string): HealthVerdict => ({
    verdict,
    stateVerified: o.stateVerified,
    reason: reason.slice(0, 1000),
    probe,
    ...(outcome.kind === 'injected' ? { injected: true } : {}),
    at,
  });
  if (!o.stateVerified)
    return v('unhealthy', o.stateProblem ?? 'the programmed state read back differs from the desired state');
  if (outcome.kind === 'injected') return v(outcome.verdict, `${outcome.reason} (injected by --test-verdict-file)`);
  if (outcome.kind === 'unavailable') return v('unprobed', outcome.reason);
  const r = outcome.report;
  if (r.attempted === 0) {
    return v(
      'unprobed',
      r.unreachable > 0
        ? `no probe possible: the endpoints of the ${r.unreachable} sampled virtual server(s) did not answer directly`
        : 'no probe possible: no TCP virtual server with an endpoint is programmed',
    );
  }
  if (r.failed > 0) {
    const first = r.failures[0];
    return v(
      'unhealthy',
      `probe: ${r.failed} of ${r.attempted} virtual server(s) failed through the dataplane${first ? `: ${first.target}: ${first.error}` : ''}`,
    );
  }
  const lat = r.latencyMs ? `, connect p50 ${fmt(r.latencyMs.p50)} max ${fmt(r.latencyMs.max)}` : '';
  return v('healthy', `probe: ${r.succeeded}/${r.attempted} virtual server(s) answered through the dataplane${lat}`);
}

const fmt = (ms: number) => `${ms < 10 ? ms.toFixed(1) : Math.round(ms)}ms`;

/**
 * The probe found a virtual server that failed through the dataplane while its endpoint answered
 * a direct connection: the node's own forwarding is broken (its state lost or overridden), not an
 * endpoint. What makes the applier resync at once rather than at the next interval. Injected
 * verdicts never do: they say nothing about the kernel.
 */
export function blamesDataplane(outcome: ProbeOutcome): boolean {
  return outcome.kind === 'report' && outcome.report.failed > 0;
}

/**
 * The verdict's probe found the node's dataplane down as a whole: EVERY virtual server it tried
 * failed through the dataplane while its endpoint answered directly (C1: a lost table fails them
 * all). Narrower than blamesDataplane (one failure asks for a resync): one failing Service among
 * working ones says something about that Service's path, not that the node forwards nothing, so
 * it does not fail the node's /healthz (services/applier/proxier-health.ts).
 */
export function verdictSaysDataplaneDown(v: HealthVerdict): boolean {
  return !v.injected && !!v.probe && v.probe.attempted > 0 && v.probe.failed === v.probe.attempted;
}
