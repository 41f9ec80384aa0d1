#!/usr/bin/env bash
# Builds (or finds in the cache) the kernel, module tree and initramfs of the test VM.
#
#   test/vm/harness/build-image.sh        -> prints the image directory on stdout
#
# The image lives in <repo>/.cache/vm/<key>/, where key = kernel package + its version
# + a hash of the harness files, so a new Debian kernel or an edited init rebuilds and
# a second run with nothing changed only hashes four small files. Progress goes to
# stderr; stdout carries nothing but the image directory, so callers can capture it.
#
# Image directory contents:
#   vmlinuz             the Debian kernel
#   initramfs.cpio.gz   busybox-static + the few modules needed to mount 9p + init
#   modroot/lib/modules/<kver>/   the network/crypto/fs part of the module tree (with
#                       depmod output), shared read-only into the guest so the host's
#                       kmod can modprobe anything from it, soft dependencies included
#   kver                the kernel release string
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache_root="${SWITCHBOARD_VM_CACHE:-$repo/.cache/vm}"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, depmod and qemu shares need it)"

# --- host packages ---------------------------------------------------------------
# Only touch apt when something is missing: a fresh CI machine gets everything, a warm
# one pays nothing. apt-get update runs only then, because the lists may be empty.
need_pkgs=(qemu-system-x86 busybox-static kmod cpio ipvsadm ipset nftables iptables iproute2 conntrack)
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${need_pkgs[@]}" 2>/dev/null || true)"
missing=()
for p in "${need_pkgs[@]}"; do
  grep -qx "$p install ok installed" <<<"$installed" || missing+=("$p")
done
apt_updated=0
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing missing packages: ${missing[*]}"
  apt-get update -qq >&2
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- which kernel ------------------------------------------------------------------
# linux-image-amd64 is a metapackage; the real image is the package it depends on.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
kpkg="$(kernel_pkg || true)"
if [ -z "$kpkg" ] && [ "$apt_updated" = 0 ]; then
  log "no package lists for linux-image-amd64; running apt-get update"
  apt-get update -qq >&2
  kpkg="$(kernel_pkg || true)"
fi
[ -n "$kpkg" ] || die "cannot resolve the package behind linux-image-amd64 (apt sources?)"
kver_pkg="$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2; exit}')"
[ -n "$kver_pkg" ] && [ "$kver_pkg" != "(none)" ] || die "no candidate version for $kpkg"

harness_hash="$(cat "$here/build-image.sh" "$here/init.sh" "$here/guest.sh" "$here/modules.txt" \
  | sha256sum | cut -c1-12)"
key="${kpkg#linux-image-}_${kver_pkg}_${harness_hash}"
out="$cache_root/$key"

cached() {
  [ -f "$out/.complete" ] || return 1
  touch "$out/.complete" 2>/dev/null || true # marks the image as in use for pruning
  log "cached: $out"
  printf '%s\n' "$out"
}
cached && exit 0

# One build at a time (concurrent test runs share the cache); the loser of the race
# finds the winner's image.
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
cached && exit 0

log "building $out (kernel $kpkg $kver_pkg)"
t0=$(date +%s)
work="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- kernel package ---------------------------------------------------------------
# The .deb is fetched into our own directory; apt warns that _apt cannot write there
# (it downloads as root instead), which is harmless noise, so it is filtered.
(cd "$work" && apt-get download "$kpkg=$kver_pkg" 2>&1 | grep -v 'unsandboxed' >&2) || true
deb="$(ls "$work"/*.deb 2>/dev/null | head -n1)"
[ -n "$deb" ] || die "apt-get download $kpkg=$kver_pkg produced no .deb"
dpkg-deb -x "$deb" "$work/pkg"
kver="$(ls "$work/pkg/lib/modules" | head -n1)"
[ -n "$kver" ] || die "no module tree in $deb"

# --- module tree for the guest ----------------------------------------------------
# Only the parts a network test VM can need (about 45 MB of the 400 MB tree); depmod
# writes modules.dep(.bin) and modules.softdep, so kmod in the guest resolves
# crc32c before libcrc32c by itself.
src="$work/pkg/lib/modules/$kver"
dst="$work/img/modroot/lib/modules/$kver"
mkdir -p "$dst"
cp "$src"/modules.builtin "$src"/modules.builtin.modinfo "$src"/modules.order "$dst"/
for sub in net fs/9p fs/netfs fs/fscache fs/overlayfs drivers/net drivers/virtio drivers/char/hw_random lib crypto arch/x86/crypto; do
  [ -d "$src/kernel/$sub" ] || continue
  mkdir -p "$dst/kernel/$(dirname "$sub")"
  cp -a "$src/kernel/$sub" "$dst/kernel/$sub"
done
depmod -b "$work/img/modroot" "$kver"

# --- initramfs ----------------------------------------------------------------------
# Stage 1 (init.sh) only needs what mounts the host root: virtio-pci, 9p over virtio
# and their dependencies, in the order kmod computes here at build time, loaded with
# busybox insmod.
ird="$work/initramfs"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$ird/bin/busybox"
for a in sh mount umount mkdir insmod chroot poweroff sleep cat echo ln cp ls mknod; do
  ln -s busybox "$ird/bin/$a"
done
: > "$ird/modules/order"
for m in virtio_pci 9pnet_virtio 9p; do
  modprobe -d "$work/img/modroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$ird/modules/"
  printf '%s\n' "$(basename "$ko")" >> "$ird/modules/order"
done
cp "$here/init.sh" "$ird/init"
cp "$here/guest.sh" "$ird/guest.sh"
cp "$here/modules.txt" "$ird/modules.txt"
chmod +x "$ird/init" "$ird/guest.sh"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/img/initramfs.cpio.gz"

cp "$work/pkg/boot/vmlinuz-$kver" "$work/img/vmlinuz"
printf '%s\n' "$kver" > "$work/img/kver"
touch "$work/img/.complete"

# Publish atomically, then drop images of other keys (~130 MB each) that no run has
# used for an hour: a VM started from an older image may still be reading its modules.
rm -rf "$out"
mv "$work/img" "$out"
for old in "$cache_root"/*/; do
  old="${old%/}"
  [ "$old" = "$out" ] && continue
  if [ -z "$(find "$old/.complete" -mmin -60 2>/dev/null)" ]; then rm -rf "$old"; fi
done
log "built in $(( $(date +%s) - t0 )) s: $(du -sh "$out" | cut -f1)"
printf '%s\n' "$out"
