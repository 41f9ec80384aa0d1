import { DemoError } from './narrator.ts';
import { sleep } from './demo-resources.ts';

export interface NodeRow {
  node: string;
  status: string;
  appliedVersion: number | null;
  appliedConfigRevision: number | null;
  targetVersion: number;
  mode: string | null;
  lastError: string | null;
}
export interface Rollout {
  configRevision: number;
  status: string;
  wave: number;
  waves: string[][];
  haltedBy?: { node: string; error: string };
}
export interface PlannerStatus {
  latestVersion: number;
  nodes: NodeRow[];
  config: { defaultRevision: number; rollout?: Rollout };
}

/** The demo's view of the planner's HTTP API, and bounded waits on it. */
export class PlannerClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    private readonly logHint: string,
  ) {}

  async get<T>(path: string): Promise<T> {
    const r = await fetch(this.url + path, {
      headers: { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(10_000),
    });
    if (!r.ok) throw new Error(`GET ${path}: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    const r = await fetch(this.url + path, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
      headers: {
        authorization: `Bearer ${this.token}`,
        'content-type': 'application/json',
        'x-switchboard-actor': 'demo',
      },
    });
    const text = await r.text();
    if (!r.ok) throw new DemoError(`POST ${path} answered HTTP ${r.status}: ${text.trim()}`);
    return JSON.parse(text) as T;
  }

  status(): Promise<PlannerStatus> {
    return this.get<PlannerStatus>('/status');
  }

  /**
   * Polls `check` every 250 ms until it returns a value, for at most `seconds`; then fails with
   * `what`, the last state seen and where the logs are. Never unbounded.
   */
  async until<T>(
    what: string,
    seconds: number,
    check: () => Promise<T | undefined>,
    describe?: () => Promise<string>,
  ): Promise<T> {
    const deadline = Date.now() + seconds * 1000;
    let lastError = '';
    for (;;) {
      try {
        const v = await check();
        if (v !== undefined) return v;
      } catch (e) {
        if (e instanceof DemoError) throw e;
        lastError = (e as Error).message;
      }
      if (Date.now() > deadline) {
        const seen = describe ? await describe().catch((e: Error) => `(state unavailable: ${e.message})`) : lastError;
        throw new DemoError(
          `${what}: not reached within ${seconds} s${seen ? `; last seen: ${seen}` : ''}. Logs: ${this.logHint}`,
        );
      }
      await sleep(250);
    }
  }

  /** Every node SYNCED at the latest version (and, when given, on config revision `rev`). */
  async allSynced(nodes: readonly string[], seconds: number, rev?: number): Promise<PlannerStatus> {
    return this.until(
      `every node (${nodes.join(', ')}) SYNCED at the latest version`,
      seconds,
      async () => {
        const s = await this.status();
        const ok = nodes.every((n) => {
          const row = s.nodes.find((r) => r.node === n);
          return (
            row &&
            row.status === 'SYNCED' &&
            row.appliedVersion === s.latestVersion &&
            (rev === undefined || row.appliedConfigRevision === rev)
          );
        });
        return ok ? s : undefined;
      },
      async () => {
        const s = await this.status();
        return (
          s.nodes
            .map(
              (r) =>
                `${r.node} ${r.status} applied ${r.appliedVersion ?? '-'}/${s.latestVersion}${r.lastError ? ` (${r.lastError})` : ''}`,
            )
            .join('; ') || 'no node reported yet'
        );
      },
    );
  }
}
