#!/bin/sh
':' /*
# The `tlstap` command: this file is both a shell script and the ES module it runs with node.
# node 20 reads the whole NODE_EXTRA_CA_CERTS bundle before any script runs (~65 ms of a ~100 ms
# start with Debian's bundle), and tlstap's own process opens no TLS connection. So node starts
# without the variable, which is handed over in TLSTAP_NODE_EXTRA_CA_CERTS and put back below, before
# tlstap starts any program (demo clients, --remote's command): those get it exactly as it was.
if [ -n "${NODE_EXTRA_CA_CERTS+set}" ]; then
  export TLSTAP_NODE_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"
  unset NODE_EXTRA_CA_CERTS
else
  unset TLSTAP_NODE_EXTRA_CA_CERTS
fi
exec node "$0" "$@"
*/
// Run by node (through the lines above, or as `node bin/tlstap.js`): the variable back, then the CLI.
// Run as `node bin/tlstap.js` with the variable set, the user's own value stays.
const held = process.env.TLSTAP_NODE_EXTRA_CA_CERTS;
if (held !== undefined) {
  process.env.NODE_EXTRA_CA_CERTS ??= held;
  delete process.env.TLSTAP_NODE_EXTRA_CA_CERTS;
}
await import('../dist/src/cli.js');
