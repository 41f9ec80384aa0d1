#!/usr/bin/env bash
# A filter on the VM's output (bench/applier/run-in-vm.sh pipes it through here): copies every line
# to stdout unchanged and, at each `bench-phase: NAME begin|end` line the bench writes, reads the
# emulator's CPU time (utime + stime of the qemu process under the parent script, /proc/PID/stat) and
# the wall clock. At each end it writes to stderr:
#   emulator-cpu: NAME wall W s, emulator CPU C s (P % of one host core), host load L
# and after a `load end`, the from-empty ratio on the emulator's CPU (load / baseline), next to the
# wall-clock ratio the bench reports. Why: the VM is TCG on one host thread; on this shared host the
# share of a core that thread gets moves with other people's work, and the baseline and our load
# run minutes apart, so their wall-clock ratio carries the change of share between the two windows.
# The emulator's CPU seconds are the guest's work, nearly independent of that share.
set -uo pipefail
parent=$PPID qpid="" tck=$(getconf CLK_TCK)
declare -A t0 c0 cpu
find_qemu() {
  local todo=("$parent") p kids
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}; todo=("${todo[@]:1}")
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = qemu-system-x86 ] && { echo "$p"; return; }
    kids=$(ps -o pid= --ppid "$p" 2>/dev/null) && todo+=($kids)
  done
}
while IFS= read -r line; do
  printf '%s\n' "$line"
  [[ $line =~ ^bench-phase:\ (.+)\ (begin|end)$ ]] || continue
  name=${BASH_REMATCH[1]} edge=${BASH_REMATCH[2]}
  [ -n "$qpid" ] || qpid=$(find_qemu)
  [ -n "$qpid" ] || { echo "emulator-cpu: no qemu process found under PID $parent" >&2; continue; }
  read -r ut st < <(cut -d' ' -f14,15 /proc/"$qpid"/stat) || continue
  now=$(date +%s.%N) ticks=$((ut + st))
  if [ "$edge" = begin ]; then t0[$name]=$now c0[$name]=$ticks; continue; fi
  [ -n "${t0[$name]:-}" ] || continue
  cpu[$name]=$(awk -v a="${c0[$name]}" -v b="$ticks" -v k="$tck" 'BEGIN { printf "%.1f", (b - a) / k }')
  awk -v n="$name" -v w0="${t0[$name]}" -v w1="$now" -v c="${cpu[$name]}" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { w = w1 - w0; printf "emulator-cpu: %s wall %.1f s, emulator CPU %.1f s (%.0f %% of one host core), host load %s\n", n, w, c, 100 * c / w, l }' >&2
  if [ "$name" = load ] && [ -n "${cpu[baseline]:-}" ]; then
    awk -v a="${cpu[load]}" -v b="${cpu[baseline]}" \
      'BEGIN { if (b > 0) printf "emulator-cpu: from empty on the emulator'"'"'s CPU: load / baseline = %.2f\n", a / b }' >&2
  fi
done
