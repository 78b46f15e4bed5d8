#!/usr/bin/env bash
# Boots Debian bookworm's own 6.1 kernel (no uprobe_multi: probes are attached one per function) for
# amd64 or arm64 under QEMU and checks, inside it, that tlstap captures curl's HTTPS download
# byte-exact: the served file's sha256 against the sha256 of the plaintext tlstap saw curl read.
#   scripts/vm-test.sh amd64|arm64 [--tlstap DIR|TARBALL] [--file FILE] [--out DIR] [--cache DIR]
# --tlstap: the tlstap to run in the guest: a package directory (default: this repository, built) or
#           a tarball from `npm pack`, installed here with npm into a fresh prefix and shared as installed
# --file:   the file to serve (default: 1 MiB of random bytes)
# --out:    keep the shared directory there (guest output, serial log, result.json); default: a
#           temporary one, removed on success
# --cache:  where the kernel and root file system are kept (default /var/cache/tlstap-vm)
# amd64 uses KVM when /dev/kvm works (TLSTAP_VM_ACCEL=tcg forces emulation), arm64 is emulated (TCG).
# Needs root (the image build unpacks packages as root), qemu-system-x86 / qemu-system-arm,
# mmdebstrap, cpio, kmod (depmod) and node. The guest has no network: everything is on 127.0.0.1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
arch=${1:-}
case "$arch" in amd64 | arm64) shift ;; *) echo "usage: scripts/vm-test.sh amd64|arm64 [--tlstap DIR|TARBALL] [--file FILE] [--out DIR] [--cache DIR]" >&2; exit 2 ;; esac
tlstap=$repo file='' out='' cache=/var/cache/tlstap-vm
while [ $# -gt 0 ]; do
	case "$1" in
	--tlstap) tlstap=$2 ;;
	--file) file=$2 ;;
	--out) out=$2 ;;
	--cache) cache=$2 ;;
	*) echo "vm-test: unknown option '$1'" >&2; exit 2 ;;
	esac
	shift 2
done
[ "$(id -u)" -eq 0 ] || { echo "vm-test: needs root (the image build unpacks Debian packages as root)" >&2; exit 1; }
qemu=qemu-system-x86_64
[ "$arch" = arm64 ] && qemu=qemu-system-aarch64
for tool in "$qemu" mmdebstrap cpio depmod node openssl; do
	command -v "$tool" > /dev/null || { echo "vm-test: $tool is missing (bash scripts/setup.sh installs it)" >&2; exit 1; }
done
log() { echo "vm-test[$arch]: $*" >&2; }
t0=$(date +%s)

image=$(bash "$repo/scripts/vm/build-image.sh" "$arch" "$cache")
log "image $image ($(cat "$image/kernel.txt")), ready after $(($(date +%s) - t0)) s"

if [ -n "$out" ]; then
	share=$out
	rm -rf "$share"
	mkdir -p "$share"
else
	share=$(mktemp -d /tmp/tlstap-vm-XXXXXX)
fi
mkdir -p "$share/www" "$share/tls" "$share/out"
cp "$repo/scripts/vm/guest.sh" "$share/guest.sh"
# arm64 also checks the agent alone: the guest listens for shell commands on 10.0.2.15:7070, which
# QEMU forwards from a free port here; this tree's x86_64 front end drives the arm64 agent through it.
nic=(-nic none)
agent_port=''
if [ "$arch" = arm64 ]; then
	cp "$repo/scripts/vm/agent-shell.sh" "$share/agent-shell.sh"
	touch "$share/agent-check"
	agent_port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
	nic=(-nic "user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$agent_port-10.0.2.15:7070")
fi
if [ -n "$file" ]; then cp "$file" "$share/www/"; else head -c 1048576 /dev/urandom > "$share/www/random.bin"; fi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$share/tls/key.pem" -out "$share/tls/cert.pem" 2> /dev/null

# A tarball is installed the way a user installs it (npm install -g), into a prefix of its own.
if [ -f "$tlstap" ]; then
	prefix="$share/prefix"
	npm install -g --prefix "$prefix" --no-audit --no-fund --loglevel=error "$(realpath "$tlstap")" >&2
	log "installed $(basename "$tlstap") into $prefix"
	tlstap="$prefix/lib/node_modules/tlstap"
fi
[ -f "$tlstap/dist/src/cli.js" ] || { echo "vm-test: $tlstap has no dist/src/cli.js (run npm run build, or pass --tlstap)" >&2; exit 1; }

common=(-m 1536 -smp 2 -display none -no-reboot "${nic[@]}" -kernel "$image/vmlinuz" -initrd "$image/initrd.cpio"
	-serial "file:$share/out/serial.log"
	-virtfs "local,path=$share,mount_tag=share,security_model=none"
	-virtfs "local,path=$tlstap,mount_tag=tlstap,security_model=none,readonly=on")
if [ "$arch" = amd64 ]; then
	tcg=(-accel tcg -cpu max -append 'console=ttyS0 panic=-1 quiet')
	kvm=(-accel kvm -cpu host -append 'console=ttyS0 panic=-1 quiet')
	limit=900
else
	# pauth-impdef: QEMU's own pointer-authentication hash, much cheaper to emulate than QARMA.
	tcg=(-M virt -accel tcg -cpu max,pauth-impdef=on -append 'console=ttyAMA0 panic=-1 quiet')
	kvm=()
	limit=1500
fi

# Runs QEMU with the given options until it ends or $limit s pass. With a probe time (KVM), returns 1
# when the guest's init has not spoken by then or QEMU ended before it did: KVM does not work here.
boot() {
	local probe=$1
	shift
	rm -f "$share/out/serial.log" "$share/out/guest.rc" "$share/out/agent.ready"
	"$qemu" "${common[@]}" "$@" 2> "$share/out/qemu.stderr" &
	local pid=$! waited=0 driver=''
	while kill -0 "$pid" 2> /dev/null; do
		if [ -n "$agent_port" ] && [ -z "$driver" ] && [ -f "$share/out/agent.ready" ]; then
			node "$repo/scripts/vm/agent-drive.js" "$share" "$agent_port" > "$share/out/agent-drive.log" 2>&1 &
			driver=$!
		fi
		if [ "$probe" -gt 0 ] && [ "$waited" -ge "$probe" ] && ! grep -q 'tlstap-vm: init' "$share/out/serial.log" 2> /dev/null; then
			kill "$pid"
			break
		fi
		if [ "$waited" -ge "$limit" ]; then
			log "the guest did not finish within $limit s"
			kill "$pid"
			break
		fi
		sleep 1
		waited=$((waited + 1))
	done
	wait "$pid" || true
	[ -z "$driver" ] || wait "$driver" || true
	[ "$probe" -eq 0 ] || grep -q 'tlstap-vm: init' "$share/out/serial.log" 2> /dev/null
}

t1=$(date +%s)
accel=tcg
if [ ${#kvm[@]} -gt 0 ] && [ "${TLSTAP_VM_ACCEL:-auto}" != tcg ] && [ -w /dev/kvm ]; then
	if boot 30 "${kvm[@]}"; then
		accel=kvm
	else
		log "KVM did not boot the guest ($(head -c 200 "$share/out/qemu.stderr" | tr '\n' ' ')): emulating it (TCG)"
	fi
fi
[ "$accel" = kvm ] || boot 0 "${tcg[@]}"
log "guest ($accel) ran $(($(date +%s) - t1)) s"
if [ ! -f "$share/out/guest.rc" ] || [ "$(cat "$share/out/guest.rc")" != 0 ]; then
	log "the guest failed (exit $(cat "$share/out/guest.rc" 2> /dev/null || echo none)); serial console:"
	tail -n 60 "$share/out/serial.log" "$share/out/qemu.stderr" >&2 || true
	log "kept $share"
	exit 1
fi
echo "$accel" > "$share/out/accel.txt"
if node "$repo/scripts/vm/check.js" "$share"; then
	log "passed in $(($(date +%s) - t0)) s"
	[ -n "$out" ] || rm -rf "$share"
else
	log "capture check failed; kept $share"
	exit 1
fi
