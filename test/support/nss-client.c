// SPDX-License-Identifier: MIT
/*
 * A small NSS TLS client for tlstap's end-to-end tests:
 *
 *	nss-client HOST PORT PATH [FILE_TO_READ]
 *
 * Reads FILE_TO_READ with NSPR's PR_Open/PR_Read first (plain file I/O that tlstap must not report),
 * then connects to HOST:PORT over TCP, pushes NSS's SSL layer on the socket, accepts any certificate,
 * sends "GET PATH HTTP/1.1" with PR_Write and copies the response, read with PR_Read, to stdout.
 * No certificate database: NSS_NoDB_Init. Exit status 0 on success, 1 on any failure (with the NSPR
 * error on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nspr.h>
#include <prerror.h>
#include <prio.h>
#include <prnetdb.h>

#include <nss.h>
#include <ssl.h>
#include <sslproto.h>

static int fail(const char *what)
{
	PRErrorCode code = PR_GetError();
	const char *name = PR_ErrorToName(code);

	fprintf(stderr, "nss-client: %s failed: %s (%d)\n", what, name ? name : "unknown error", (int)code);
	return 1;
}

/* Any certificate is fine: the test server's is self-signed. */
static SECStatus accept_any_certificate(void *arg, PRFileDesc *fd, PRBool check_sig, PRBool is_server)
{
	(void)arg, (void)fd, (void)check_sig, (void)is_server;
	return SECSuccess;
}

static SECStatus ignore_bad_certificate(void *arg, PRFileDesc *fd)
{
	(void)arg, (void)fd;
	return SECSuccess;
}

/* Plain file I/O through NSPR: the same PR_Read as the TLS reads, on a descriptor without SSL layer. */
static int read_plain_file(const char *path)
{
	char buf[4096];
	PRInt32 n, total = 0;
	PRFileDesc *file = PR_Open(path, PR_RDONLY, 0);

	if (file == NULL)
		return fail("PR_Open");
	while ((n = PR_Read(file, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0) {
		PR_Close(file);
		return fail("PR_Read of the file");
	}
	PR_Close(file);
	fprintf(stderr, "nss-client: read %d bytes from %s\n", (int)total, path);
	return 0;
}

/* HOST is an IPv4 or IPv6 literal or a name. */
static int resolve(const char *host, PRUint16 port, PRNetAddr *addr)
{
	PRAddrInfo *info;
	void *iter;

	if (PR_StringToNetAddr(host, addr) == PR_SUCCESS) {
		if (PR_NetAddrFamily(addr) == PR_AF_INET6)
			addr->ipv6.port = PR_htons(port);
		else
			addr->inet.port = PR_htons(port);
		return 0;
	}
	info = PR_GetAddrInfoByName(host, PR_AF_UNSPEC, PR_AI_ADDRCONFIG);
	if (info == NULL)
		return fail("PR_GetAddrInfoByName");
	iter = PR_EnumerateAddrInfo(NULL, info, port, addr);
	PR_FreeAddrInfo(info);
	if (iter == NULL) {
		fprintf(stderr, "nss-client: no address for %s\n", host);
		return 1;
	}
	return 0;
}

static int write_all(PRFileDesc *fd, const char *buf, PRInt32 len)
{
	while (len > 0) {
		PRInt32 n = PR_Write(fd, buf, len);

		if (n <= 0)
			return fail("PR_Write");
		buf += n;
		len -= n;
	}
	return 0;
}

static int fetch(const char *host, PRUint16 port, const char *path)
{
	PRNetAddr addr;
	PRFileDesc *tcp, *ssl;
	char request[2048];
	char buf[16384];
	PRInt32 n;
	int len, rc = 1;

	if (resolve(host, port, &addr))
		return 1;
	tcp = PR_OpenTCPSocket(PR_NetAddrFamily(&addr));
	if (tcp == NULL)
		return fail("PR_OpenTCPSocket");
	if (PR_Connect(tcp, &addr, PR_INTERVAL_NO_TIMEOUT) != PR_SUCCESS) {
		PR_Close(tcp);
		return fail("PR_Connect");
	}
	/* The SSL layer goes on top of the connected socket: from here on, PR_* calls on ssl are TLS. */
	ssl = SSL_ImportFD(NULL, tcp);
	if (ssl == NULL) {
		PR_Close(tcp);
		return fail("SSL_ImportFD");
	}
	if (SSL_OptionSet(ssl, SSL_SECURITY, PR_TRUE) != SECSuccess ||
	    SSL_OptionSet(ssl, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE) != SECSuccess ||
	    SSL_SetURL(ssl, host) != SECSuccess ||
	    SSL_AuthCertificateHook(ssl, accept_any_certificate, NULL) != SECSuccess ||
	    SSL_BadCertHook(ssl, ignore_bad_certificate, NULL) != SECSuccess ||
	    SSL_ResetHandshake(ssl, PR_FALSE) != SECSuccess) {
		fail("SSL setup");
		goto out;
	}

	/* An IPv6 literal goes in brackets in the Host header. */
	len = snprintf(request, sizeof(request),
		       "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nConnection: close\r\n\r\n", path,
		       strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", (unsigned)port);
	if (len < 0 || (size_t)len >= sizeof(request)) {
		fprintf(stderr, "nss-client: request too long\n");
		goto out;
	}
	/* The handshake happens inside the first write. */
	if (write_all(ssl, request, len))
		goto out;
	while ((n = PR_Read(ssl, buf, sizeof(buf))) > 0) {
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
			perror("nss-client: stdout");
			goto out;
		}
	}
	/* A peer that closes without close_notify ends the stream too (Connection: close). */
	if (n < 0 && PR_GetError() != PR_END_OF_FILE_ERROR && PR_GetError() != PR_CONNECT_RESET_ERROR) {
		fail("PR_Read");
		goto out;
	}
	rc = 0;
out:
	fflush(stdout);
	PR_Close(ssl);
	return rc;
}

int main(int argc, char **argv)
{
	char *end;
	unsigned long port;
	int rc;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: nss-client HOST PORT PATH [FILE_TO_READ]\n");
		return 2;
	}
	port = strtoul(argv[2], &end, 10);
	if (*argv[2] == '\0' || *end != '\0' || port == 0 || port > 65535) {
		fprintf(stderr, "nss-client: bad port %s\n", argv[2]);
		return 2;
	}

	PR_Init(PR_USER_THREAD, PR_PRIORITY_NORMAL, 0);
	if (NSS_NoDB_Init(NULL) != SECSuccess)
		return fail("NSS_NoDB_Init");
	if (NSS_SetDomesticPolicy() != SECSuccess)
		return fail("NSS_SetDomesticPolicy");

	rc = argc == 5 ? read_plain_file(argv[4]) : 0;
	if (rc == 0)
		rc = fetch(argv[1], (PRUint16)port, argv[3]);

	SSL_ClearSessionCache();
	if (NSS_Shutdown() != SECSuccess)
		fail("NSS_Shutdown");
	PR_Cleanup();
	return rc;
}
