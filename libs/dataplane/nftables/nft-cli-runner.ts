import { spawn } from 'node:child_process';
import { NftError, type NftReadScope, type NftRunner } from './nft-runner.ts';
import type { NftTransaction } from './nft-transaction.ts';
import { readNftTable, type NftReadBack } from './read-nft-table.ts';

export interface NftCliRunnerOptions {
  /** Run inside this network namespace (`ip netns exec NS nft ...`). */
  readonly netns?: string;
  /** nft binary (default `nft` from PATH). */
  readonly nftPath?: string;
}

/** NftRunner over the `nft` binary: transactions as `nft -f -` scripts, reads as `nft -j list table`. */
export class NftCliRunner implements NftRunner {
  readonly backend = 'nft';

  constructor(private readonly options: NftCliRunnerOptions = {}) {}

  async run(tx: NftTransaction): Promise<void> {
    if (tx.error) throw tx.error;
    const script = tx.toScript();
    if (script !== '') await this.runScript(script);
  }

  async listTable(
    family: string,
    table: string,
    _scope?: NftReadScope,
    signal?: AbortSignal,
  ): Promise<NftReadBack | undefined> {
    const json = await this.listTableJson(family, table, signal);
    return json === undefined ? undefined : readNftTable(json);
  }

  close(): void {}

  /** Runs a script as one atomic transaction (`nft -f -`): all of it applies, or none. */
  async runScript(script: string): Promise<void> {
    await this.exec(['-f', '-'], script);
  }

  /** `nft -j list table FAMILY NAME`; undefined when the table does not exist. */
  async listTableJson(family: string, table: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      return await this.exec(['-j', 'list', 'table', family, table], undefined, signal);
    } catch (e) {
      if (e instanceof NftError && /No such file or directory/.test(e.stderr)) return undefined;
      throw e;
    }
  }

  /** Runs `nft args`; `signal` (reads only: `nft` is killed) ends it early, rejecting with its reason. */
  async exec(args: readonly string[], stdin?: string, signal?: AbortSignal): Promise<string> {
    const nft = this.options.nftPath ?? 'nft';
    const [cmd, argv] = this.options.netns
      ? ['ip', ['netns', 'exec', this.options.netns, nft, ...args]]
      : [nft, [...args]];
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
        else reject(new NftError(args, code, Buffer.concat(err).toString('utf8')));
      });
      child.stdin.on('error', () => {
        /* reported through the exit code */
      });
      child.stdin.end(stdin ?? '');
    });
  }
}
