#!/usr/bin/env bash
# Builds (once) the kernel and initramfs of a test VM from Debian bookworm's own packages and prints
# the directory that holds them: vmlinuz, initrd.cpio (the whole root file system) and kernel.txt.
#   bash scripts/vm/build-image.sh amd64|arm64 [CACHE_DIR]
# The root file system is made by mmdebstrap's extract variant: packages and their dependencies are
# unpacked, no maintainer script runs, so a foreign architecture needs no emulator. The image is kept
# under CACHE_DIR (default /var/cache/tlstap-vm) in a directory named by a hash of everything that
# goes into it; delete that directory to pick up a newer kernel.
set -euo pipefail
arch=${1:?usage: build-image.sh amd64|arm64 [CACHE_DIR]}
cache=${2:-/var/cache/tlstap-vm}
here=$(cd "$(dirname "$0")" && pwd)
case "$arch" in amd64 | arm64) ;; *) echo "build-image: unknown architecture '$arch' (expected amd64 or arm64)" >&2; exit 2 ;; esac

# What the guest runs: node for tlstap, curl as the client, openssl as the server, busybox for the
# init and the shell, kmod to load the 9p modules, libbpf and libelf for a tlstap built against them.
packages=(nodejs curl openssl busybox-static kmod libbpf1 libelf1 zlib1g)
# The kernel modules that mount the host's directory over virtio 9p, and virtio-net for the arm64
# agent check's shell listener (reached through QEMU's hostfwd); the rest stay out of the image.
module_dirs=(kernel/drivers/virtio kernel/net/9p kernel/fs/9p kernel/fs/netfs kernel/fs/fscache
	kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko)

key=$( (echo "$arch ${packages[*]} ${module_dirs[*]}"; cat "$here/build-image.sh" "$here/init") | sha256sum | cut -c1-16)
image="$cache/$arch-$key"
if [ -f "$image/initrd.cpio" ]; then
	echo "$image"
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-$arch-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/kernel"
# Debian's sources as the host has them (a one-line list, deb822, or both): the same mirrors.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources; do
	if [ -s "$f" ] && grep -q '^[^#]' "$f"; then sources+=("$f"); fi
done
[ ${#sources[@]} -gt 0 ] || { echo "build-image: no Debian apt sources in /etc/apt" >&2; exit 1; }

echo "build-image: $arch root file system (${packages[*]}) and kernel" >&2
include=$(IFS=,; echo "${packages[*]}")
# The extract hook runs apt with mmdebstrap's configuration (the target's architecture): it fetches
# the linux-image metapackage, then the versioned kernel package it depends on.
mmdebstrap --quiet --variant=extract --architectures="$arch" --include="$include" \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--extract-hook="set -e; cd '$work/debs'; apt-get -qq -o APT::Sandbox::User=root download linux-image-$arch; \
		apt-get -qq -o APT::Sandbox::User=root download \$(dpkg-deb -f linux-image-${arch}_*.deb Depends | grep -o 'linux-image-[^ ,]*')" \
	bookworm "$work/root" "${sources[@]}" >&2

kdeb=$(ls "$work"/debs/linux-image-[0-9]*.deb)
dpkg-deb -x "$kdeb" "$work/kernel"
kver=$(ls "$work/kernel/lib/modules")
mods="$work/root/lib/modules/$kver"
mkdir -p "$mods"
for d in "${module_dirs[@]}"; do
	if [ -e "$work/kernel/lib/modules/$kver/$d" ]; then
		mkdir -p "$mods/$(dirname "$d")"
		cp -r "$work/kernel/lib/modules/$kver/$d" "$mods/$d"
	fi
done
cp "$work/kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$mods/"
depmod -b "$work/root" "$kver"
install -m 0755 "$here/init" "$work/root/init"

mkdir -p "$work/image"
cp "$work/kernel/boot/vmlinuz-$kver" "$work/image/vmlinuz"
echo "$kver $(dpkg-deb -f "$kdeb" Version)" > "$work/image/kernel.txt"
# Uncompressed: the kernel unpacks it faster than it could decompress it under emulation.
(cd "$work/root" && find . -print0 | cpio --null -o -H newc --quiet) > "$work/image/initrd.cpio"
rm -rf "$image"
mv "$work/image" "$image"
echo "build-image: $image ($(du -sh "$image" | cut -f1))" >&2
echo "$image"
