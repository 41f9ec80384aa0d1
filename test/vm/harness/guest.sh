#!/bin/bash
# Stage 2 of the test VM: runs as root chrooted into the host's (read-only) root.
#
# Loads the kernel modules, brings up loopback, then runs the command the host wrote
# into the results share, with stdout+stderr piped (not a tty, so tools behave as in
# CI) to ttyS1, which qemu streams to the host's stdout. The exit code goes back in
# results/exit-code; timings and module failures go next to it for the host to print.
set -u
R=/run/vm/results
cut -d' ' -f1 /proc/uptime > "$R/boot-seconds"

# kmod looks for /lib/modules/<release>, which the host root does not have and we
# cannot create (read-only), so modprobe goes through a wrapper that points it at the
# shared module tree; the kernel's own on-demand loading uses the same wrapper.
cat > /run/vm/bin/modprobe <<'EOF'
#!/bin/sh
exec /sbin/modprobe -d /run/vm/modroot "$@"
EOF
cat > /run/vm/bin/modinfo <<'EOF'
#!/bin/sh
exec /sbin/modinfo -b /run/vm/modroot "$@"
EOF
chmod +x /run/vm/bin/modprobe /run/vm/bin/modinfo
echo /run/vm/bin/modprobe > /proc/sys/kernel/modprobe

export PATH=/run/vm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mods=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' /run/vm/modules.txt)
# One modprobe for all of them (a process per module costs seconds under TCG); which
# ones are missing is read back from /sys/module and modules.builtin.
# shellcheck disable=SC2086
modprobe -a -q $mods 2>/dev/null
builtin_list="/run/vm/modroot/lib/modules/$(uname -r)/modules.builtin"
failed=()
for m in $mods; do
  [ -d "/sys/module/$m" ] && continue
  grep -q "/$m.ko\$" "$builtin_list" 2>/dev/null && continue
  failed+=("$m")
done
printf '%s\n' "${failed[@]}" > "$R/modules-failed"

ip link set lo up
hostname switchboard-vm 2>/dev/null || true
mkdir -p /tmp/home /tmp/.cache /tmp/.npm

export HOME=/tmp/home TMPDIR=/tmp XDG_CACHE_HOME=/tmp/.cache npm_config_cache=/tmp/.npm
export npm_config_update_notifier=false CI=true LANG=C.UTF-8 SWITCHBOARD_VM=1

cut -d' ' -f1 /proc/uptime > "$R/ready-seconds"
# raw: no \n -> \r\n translation, no echo; the host sees the bytes the command wrote.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
bash "$R/command.sh" </dev/null 2>&1 | cat > /dev/ttyS1
rc=${PIPESTATUS[0]}
cut -d' ' -f1 /proc/uptime > "$R/end-seconds"
echo "$rc" > "$R/exit-code"
sync
