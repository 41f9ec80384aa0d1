#!/usr/bin/env bash
# Runs the in-VM test suite (test/vm/**/*.vm.test.ts): builds the VM image if it is not
# cached, boots the VM and runs vitest inside it. Arguments go to vitest, e.g.
#   scripts/test-vm.sh test/vm/smoke.vm.test.ts -t ipvs
# Environment: VM_MEM (MB, default 3072), VM_SMP (default 2), VM_TIMEOUT (s, default 1800).
# Exits with vitest's exit code (124: VM timeout, 125: VM failed before reporting).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

t0=$(date +%s.%N)
# The tree is read-only inside the VM: build dist/ (which bin/switchboard runs) here first.
node scripts/build.mjs --if-stale
# The child scripts the tests start, bundled: under TCG `node --import tsx` costs a child ~20 s
# before its first line runs (test/support/child-bundles.mjs). A directory per run, so two runs
# never share one; the tests find it through SWITCHBOARD_CHILD_BUNDLES.
mkdir -p "$repo/.cache"
children="$(mktemp -d "$repo/.cache/vm-children.XXXXXX")"
trap 'rm -rf "$children"' EXIT
node test/support/child-bundles.mjs "$children"
"$repo/test/vm/harness/build-image.sh" >/dev/null
t1=$(date +%s.%N)

# --configLoader runner: the default loader writes the bundled config into
# node_modules/.vite-temp, which is read-only (9p) inside the VM.
color=()
[ -t 1 ] || color=(--env NO_COLOR=1)
set +e
"$repo/test/vm/harness/run-in-vm.sh" --mem "${VM_MEM:-3072}" --smp "${VM_SMP:-2}" \
  --timeout "${VM_TIMEOUT:-1800}" "${color[@]}" --env "SWITCHBOARD_CHILD_BUNDLES=$children" -- \
  node_modules/.bin/vitest run -c vitest.vm.config.ts --configLoader runner "$@"
rc=$?
set -e
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v rc="$rc" \
  'BEGIN { printf "test-vm: image %.1f s, VM run %.1f s, total %.1f s; exit %d\n", b-a, c-b, c-a, rc }' >&2
exit "$rc"
