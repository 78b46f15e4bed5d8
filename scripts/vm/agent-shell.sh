# Runs in the arm64 test VM for each connection to the shell listener (busybox nc -ll -e): its first
# line is a shell command, run with the rest of the connection as its stdin and the connection as its
# stdout (scripts/vm/tcp-shell.js is the host's end). Stderr goes to a log: the connection carries
# only what the command writes on stdout, so the agent's frames stay clean.
exec 2>>/tmp/agent-shell.log
IFS= read -r cmd || exit 1
eval "$cmd"
