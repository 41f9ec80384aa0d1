#!/bin/sh
# Stage 1 of the test VM: PID 1 inside the initramfs (busybox sh).
#
# Mounts the host's root read-only over 9p at /newroot, lays tmpfs over its tmp and run
# (the host root cannot be written), mounts the results share (read-write), the module
# tree and the repo, then runs stage 2 (guest.sh) chrooted into the host root, and
# powers off. Any failure here is reported on the console (ttyS0, which the host keeps
# in console.log) and still powers off, so the host never waits for its timeout.

PATH=/bin
export PATH

fail() {
  echo "vm-init: FAILED: $*"
  poweroff -f
  sleep 60
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Modules for virtio-pci and 9p, in dependency order computed at build time.
while read -r ko; do
  insmod "/modules/$ko" || echo "vm-init: insmod $ko failed"
done < /modules/order

# cache=loose: the root is read-only for the guest's lifetime, so caching pages and
# metadata is safe and makes node's many small reads far cheaper.
p9="trans=virtio,version=9p2000.L,msize=512000"
mount -t 9p -o "ro,$p9,cache=loose" hostroot /newroot || fail "mount hostroot"

mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "tmpfs /tmp"
mount -t tmpfs -o mode=755 tmpfs /newroot/run || fail "tmpfs /run"
mkdir -p /newroot/run/vm/results /newroot/run/vm/modroot /newroot/run/vm/bin
# The results share is written by the guest and read by the host: no caching.
mount -t 9p -o "rw,$p9" results /newroot/run/vm/results || fail "mount results"
mount -t 9p -o "ro,$p9,cache=loose" modroot /newroot/run/vm/modroot || fail "mount modroot"

mount -t proc proc /newroot/proc || fail "proc"
mount -t sysfs sysfs /newroot/sys || fail "sysfs"
mount -t devtmpfs devtmpfs /newroot/dev || fail "devtmpfs"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts || fail "devpts"
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm || fail "shm"
# devtmpfs lacks these; bash process substitution and /dev/stdin users need them.
ln -s /proc/self/fd /newroot/dev/fd
ln -s /proc/self/fd/0 /newroot/dev/stdin
ln -s /proc/self/fd/1 /newroot/dev/stdout
ln -s /proc/self/fd/2 /newroot/dev/stderr

# The repo comes as its own share, mounted at the same absolute path as on the host,
# so it stays visible even when it lives under /tmp or /run (hidden by the tmpfs).
. /newroot/run/vm/results/vm.conf || fail "read vm.conf"
[ -d "/newroot$VM_REPO" ] || mkdir -p "/newroot$VM_REPO" || fail "mkdir $VM_REPO"
mount -t 9p -o "ro,$p9,cache=loose" repo "/newroot$VM_REPO" || fail "mount repo"

cp /guest.sh /modules.txt /newroot/run/vm/ || fail "copy stage 2"
chroot /newroot /bin/bash /run/vm/guest.sh
echo "vm-init: stage 2 exited with $?"
sync
poweroff -f
sleep 60
