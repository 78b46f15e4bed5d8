/*
 * A TLS client linked statically against OpenSSL and stripped (test/blindspots.e2e.test.ts): like a
 * browser with its TLS built in, it has no SSL_read or SSL_write symbol for tlstap to find.
 * Usage: static-client IPV4 PORT DELAY_SECONDS
 */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	sleep((unsigned)atoi(argv[3]));
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2])) };
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return 3;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1)
		return 4;
	const char req[] = "GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	SSL_write(ssl, req, sizeof(req) - 1);
	char buf[4096];
	int n;
	while ((n = SSL_read(ssl, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	SSL_shutdown(ssl);
	return 0;
}
