import { readFileSync } from 'node:fs';
import type { HealthProbe, ProbeOutcome } from './health-verdict.ts';

/**
 * TEST-ONLY (applier --test-verdict-file FILE): before each probe round the file is read; when it
 * holds `healthy|unhealthy|unprobed [REASON]`, that verdict replaces the probe's (marked
 * `injected: true` on the wire); missing or empty, the real probe runs. It lets tests drive the
 * rollout gates with dry-run appliers, which have no dataplane to probe. Never use it in
 * production: it makes a node report whatever the file says.
 */
export function withInjectedVerdict(inner: HealthProbe, file: string): HealthProbe {
  return {
    async probe(state): Promise<ProbeOutcome> {
      let text: string;
      try {
        text = readFileSync(file, 'utf8').trim();
      } catch {
        return inner.probe(state);
      }
      if (text === '') return inner.probe(state);
      const m = /^(healthy|unhealthy|unprobed)(?:\s+(.*))?$/s.exec(text);
      if (!m)
        return {
          kind: 'injected',
          verdict: 'unhealthy',
          reason: `test verdict file ${file} holds neither healthy, unhealthy nor unprobed`,
        };
      return {
        kind: 'injected',
        verdict: m[1] as 'healthy' | 'unhealthy' | 'unprobed',
        reason: (m[2] ?? 'test verdict').split('\n')[0]!.slice(0, 300),
      };
    },
  };
}
