// Kernel scenarios for link-client.test.ts, run inside a test netns.
import { openLinks } from '../../../../libs/netlink/link-client.ts';
import { NetlinkError } from '../../../../libs/netlink/netlink-error.ts';

const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return e instanceof NetlinkError ? `${e.code}: ${e.message}` : `other: ${(e as Error).message}`;
  }
};

/** Adds /32 and /128 addresses to `link`, lists them, then exercises the error paths. */
export async function addressesOn(link: string): Promise<Record<string, unknown>> {
  const c = openLinks();
  try {
    const got = await c.getLink(link);
    await c.setUp(link, true);
    await c.addAddress(link, '10.96.0.10');
    await c.addAddress(link, '10.96.0.11', 32);
    await c.addAddress(link, 'fd00:96::10');
    const listed = await c.listAddresses(link);
    const duplicate = await code(c.addAddress(link, '10.96.0.10'));
    await c.deleteAddress(link, '10.96.0.11');
    const deleteAbsent = await code(c.deleteAddress(link, '10.96.0.11'));
    const noLink = await code(c.addAddress('no-such-link', '10.96.0.12'));
    const badAddr = await code(c.addAddress(link, '10.96.0.300'));
    const missing = await c.getLink('no-such-link');
    const afterDelete = await c.listAddresses(link, 'inet');
    return {
      got,
      up: (await c.getLink(link))?.up,
      listed,
      duplicate,
      deleteAbsent,
      noLink,
      badAddr,
      missing: missing ?? null,
      afterDelete,
    };
  } finally {
    c.close();
  }
}

/** ensureDummy on a kernel without the dummy driver must fail with a clear error. */
export async function ensureDummyOutcome(): Promise<string> {
  const c = openLinks();
  try {
    return await code(c.ensureDummy());
  } finally {
    c.close();
  }
}
