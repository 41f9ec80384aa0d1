import { describe, expect, it } from 'vitest';
import { connectBus, serversText } from '../../../libs/bus/index.ts';

/** A password in a server URL is a node's credential: never in errors, logs or health answers (review3 L2). */
describe('server URLs as text', () => {
  it('keep scheme, host and port, and hide user info', () => {
    expect(serversText(['nats://node-a:S3cret@10.0.0.1:4222', 'tls://tok@h:1', 'nats://h:4222'])).toBe(
      'nats://***@10.0.0.1:4222,tls://***@h:1,nats://h:4222',
    );
    expect(serversText('nats://127.0.0.1:4222')).toBe('nats://127.0.0.1:4222');
  });

  it('a failed connect names the server without the password', async () => {
    const e = (await connectBus({ servers: 'nats://node-a:S3cretPassw0rd@127.0.0.1:1', name: 't' }).catch(
      (x: unknown) => x,
    )) as Error;
    expect(e.message).toMatch(/^NATS at nats:\/\/\*\*\*@127\.0\.0\.1:1: /);
    expect(e.message).not.toContain('S3cret');
  });
});
