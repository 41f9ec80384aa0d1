/**
 * One copy of each node and zone name for all the endpoints that name it. JSON.parse makes a new
 * string for every value over 10 characters, so each endpoint held its own copy of its node's name
 * (~60 bytes at a cloud provider's names, such as ip-10-0-1-23.eu-west-1.compute.internal), in the
 * planner's state for as long as the endpoint exists: 2.5 million copies at the scalability
 * envelope. Bounded, as a table fed by the API must be: only names of a valid node name's length
 * are kept, and past SHARED_NAMES_KEPT of them (a cluster has thousands of nodes and a few zones)
 * the table starts over, which only ends the sharing of the names seen before.
 */
const sharedNames = new Map<string, string>();
export const SHARED_NAMES_KEPT = 16_384;
export const SHARED_NAME_MAX_LENGTH = 253; // a DNS subdomain, the longest node name the API server takes

export function sharedName(name: string): string {
  const kept = sharedNames.get(name);
  if (kept !== undefined) return kept;
  if (name.length > SHARED_NAME_MAX_LENGTH) return name;
  if (sharedNames.size >= SHARED_NAMES_KEPT) sharedNames.clear();
  sharedNames.set(name, name);
  return name;
}

/** How many names the table holds now (tests: it stays bounded). */
export const sharedNamesKept = (): number => sharedNames.size;
