# Runs inside the test VM (busybox sh, as root; the host's shared directory is /mnt): serves the one
# file of /mnt/www over TLS with openssl s_server, captures curl fetching it with tlstap (mounted
# read-only from the host, 9p tag "tlstap") and leaves everything for the host to check in /mnt/out.
set -u
out=/mnt/out
cli=/opt/tlstap/dist/src/cli.js
mkdir -p /opt/tlstap /tmp/www
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro tlstap /opt/tlstap || exit 10

# Prints a line with the guest's uptime.
say() { echo "guest [$(cut -d' ' -f1 /proc/uptime) s]: $*"; }

# Waits up to $3 seconds for the text $2 in file $1, written by process $4 (which must not end first).
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -gt $(($3 * 5)) ] || ! kill -0 "$4" 2>/dev/null; then
			say "no '$2' in $1 (after $((i / 5)) s):"
			cat "$1"
			return 1
		fi
		sleep 0.2
	done
}

uname -srm > "$out/uname.txt"
node --version > "$out/node-version.txt"
say "$(cat "$out/uname.txt"), node $(cat "$out/node-version.txt")"
node "$cli" doctor > "$out/doctor.txt" 2>&1
echo $? > "$out/doctor.rc"
cat "$out/doctor.txt"
say "doctor exited $(cat "$out/doctor.rc")"

name=$(ls /mnt/www)
cp "/mnt/www/$name" /tmp/www/
cd /tmp/www
openssl s_server -WWW -accept 127.0.0.1:4433 -cert /mnt/tls/cert.pem -key /mnt/tls/key.pem > /tmp/server.log 2>&1 &
server=$!
wait_for /tmp/server.log ACCEPT 60 "$server" || exit 11
say "openssl s_server serves $name"

node "$cli" -v -f jsonl -o /tmp/capture.jsonl 2> /tmp/tlstap.stderr &
tlstap=$!
wait_for /tmp/tlstap.stderr 'capturing (' 300 "$tlstap" || exit 12
say "tlstap attached"
# How its probes are attached: per-probe links are perf events, uprobe_multi links are not.
ls -l "/proc/$tlstap/fd" > "$out/tlstap-fds.txt"
grep -c 'perf_event' "$out/tlstap-fds.txt" > "$out/perf-events.txt"
grep -c ' bpf_uprobe_multi_link_attach$' /proc/kallsyms > "$out/uprobe-multi.txt"

curl -sS --cacert /mnt/tls/cert.pem -o "$out/curl.body" "https://127.0.0.1:4433/$name"
echo $? > "$out/curl.rc"
say "curl exited $(cat "$out/curl.rc")"
sleep 1
kill -INT "$tlstap"
wait "$tlstap"
echo $? > "$out/tlstap.rc"
cp /tmp/capture.jsonl /tmp/tlstap.stderr "$out/"
say "tlstap exited $(cat "$out/tlstap.rc"); its last lines:"
tail -n 5 /tmp/tlstap.stderr

# The agent check (arm64): only tlstap-agent runs here, driven by the host's front end through a
# shell listener on 10.0.2.15:7070 (QEMU's hostfwd; scripts/vm/agent-shell.sh, scripts/vm/tcp-shell.js).
# The host says "go" once its capture is attached; curl fetches the file again; the host stops.
if [ -f /mnt/agent-check ]; then
	ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up || exit 13
	busybox nc -ll -p 7070 -e /bin/busybox sh /mnt/agent-shell.sh &
	listener=$!
	touch "$out/agent.ready"
	say "agent check: shell listener on 10.0.2.15:7070"
	wait_for_file() {
		i=0
		while [ ! -f "$1" ]; do
			i=$((i + 1))
			[ "$i" -le $(($2 * 5)) ] || { say "no $1 after $2 s"; return 1; }
			sleep 0.2
		done
	}
	if wait_for_file "$out/agent.go" 600; then
		say "agent check: the host's capture is attached; curl again"
		curl -sS --cacert /mnt/tls/cert.pem -o "$out/agent-curl.body" "https://127.0.0.1:4433/$name"
		echo $? > "$out/agent-curl.rc"
		wait_for_file "$out/agent.done" 300
	fi
	kill "$listener"
	cp /tmp/agent-shell.log "$out/" 2>/dev/null
fi
kill "$server"
