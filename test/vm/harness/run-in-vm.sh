#!/usr/bin/env bash
# Runs one command as root inside the test VM (Debian kernel with IPVS, this machine's
# own userland shared read-only over 9p) and exits with the command's exit code.
#
#   test/vm/harness/run-in-vm.sh [--mem MB] [--smp N] [--timeout S] [--env NAME=VALUE]...
#                                [--verbose] -- <command...>
#
# The command runs with cwd = the repo (same absolute path as on the host, read-only),
# HOME/TMPDIR/caches under /tmp (tmpfs), and SWITCHBOARD_VM=1. Its stdout and stderr
# stream to this script's stdout. Harness messages go to stderr, prefixed "[vm]".
# Exit codes: the command's own; 124 timeout; 125 the VM failed before reporting one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

mem=3072 smp=2 timeout_s=1800 verbose=0
envs=()
usage() { echo "usage: run-in-vm.sh [--mem MB] [--smp N] [--timeout S] [--env K=V]... [--verbose] -- <command...>" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --mem) mem="${2:?}"; shift 2 ;;
    --smp) smp="${2:?}"; shift 2 ;;
    --timeout) timeout_s="${2:?}"; shift 2 ;;
    --env) [[ "${2:-}" == *=* ]] || usage; envs+=("$2"); shift 2 ;;
    --verbose) verbose=1; shift ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -gt 0 ] || usage

say() { printf '[vm] %s\n' "$*" >&2; }
t_start=$(date +%s.%N)

img="$("$here/build-image.sh")"
kver="$(cat "$img/kver")"

results="$(mktemp -d /tmp/switchboard-vm.XXXXXX)"
qpid=""
cleanup() {
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  rm -rf "$results"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# What stage 1 needs before chrooting, and the command itself (argv quoted exactly).
printf 'VM_REPO=%q\n' "$repo" > "$results/vm.conf"
{
  printf 'cd %q || exit 125\n' "$repo"
  for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
  printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$results/command.sh"

share() { printf 'local,path=%s,mount_tag=%s,security_model=none,multidevs=remap%s' "$1" "$2" "${3:-}"; }

# TCG: KVM hangs on these machines. ttyS0 (kernel console, stage-1 messages) goes to
# console.log; ttyS1 carries the command's output to our stdout.
# thread=single: with multi-threaded TCG, node processes in the guest died at random with
# SIGSEGV or SIGILL (V8 writes JIT code on one vCPU that another executes; cross-modifying code
# is where MTTCG is fragile). One TCG thread runs the vCPUs round-robin: slower, but stable.
# VM_TCG_THREAD=multi restores the faster mode for experiments.
# VM_KERNEL_ARGS adds guest kernel arguments (e.g. "clocksource=tsc tsc=reliable": the guest
# otherwise picks hpet, and every clock read is then an emulated device access).
qemu=(qemu-system-x86_64 -accel "tcg,thread=${VM_TCG_THREAD:-single}" -m "$mem" -smp "$smp"
  -nographic -no-reboot -monitor none -nic none
  -kernel "$img/vmlinuz" -initrd "$img/initramfs.cpio.gz"
  -append "console=ttyS0 quiet panic=-1${VM_KERNEL_ARGS:+ $VM_KERNEL_ARGS}"
  -virtfs "$(share / hostroot ,readonly=on)"
  -virtfs "$(share "$img/modroot" modroot ,readonly=on)"
  -virtfs "$(share "$repo" repo ,readonly=on)"
  -virtfs "$(share "$results" results)"
  -serial "file:$results/console.log"
  -chardev stdio,id=cmdout,signal=off -serial chardev:cmdout)

say "kernel $kver, ${mem} MB, ${smp} cpus, timeout ${timeout_s} s: $*"
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null &
qpid=$!
set +e
wait "$qpid"
qrc=$?
set -e
qpid=""
t_end=$(date +%s.%N)

num() { [ -s "$results/$1" ] && cat "$results/$1" || echo "?"; }
failed_mods="$(tr '\n' ' ' < "$results/modules-failed" 2>/dev/null || true)"
[ -n "${failed_mods// /}" ] && say "modules that did not load: $failed_mods"
if [ "$verbose" = 1 ]; then say "console:"; cat "$results/console.log" >&2 || true; fi

if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  say "TIMEOUT: the VM did not finish within ${timeout_s} s; qemu killed. Console tail:"
  tail -n 30 "$results/console.log" >&2 || true
  exit 124
fi
if [ ! -s "$results/exit-code" ]; then
  say "FAILED: the VM stopped (qemu exit $qrc) without reporting an exit code. Console tail:"
  tail -n 30 "$results/console.log" >&2 || true
  exit 125
fi
rc="$(cat "$results/exit-code")"
boot="$(num boot-seconds)" ready="$(num ready-seconds)" end="$(num end-seconds)"
say "$(awk -v b="$boot" -v r="$ready" -v e="$end" -v t0="$t_start" -v t1="$t_end" -v rc="$rc" 'BEGIN {
  printf "boot %.1f s (guest uptime at stage 2), modules+setup %.1f s, command %.1f s, total %.1f s wall; exit %d", b, r-b, e-r, t1-t0, rc }')"
exit "$rc"
