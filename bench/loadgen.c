// SPDX-License-Identifier: GPL-2.0-only
/*
 * loadgen: a TLS 1.3 load generator for measuring what tracing SSL_read/SSL_write costs.
 *
 * One process forks a reader (a TLS server that counts what SSL_read returns) and a writer (a
 * TLS client that makes N SSL_write calls of S bytes) joined by a loopback TCP connection. The
 * certificate is made in memory at start (EC P-256, self-signed), so no files are needed.
 *
 * The plaintext is a fixed pattern: the byte at stream offset p is p % 251. Call i therefore
 * carries bytes (i * S + k) % 251 for k = 0..S-1, and a capture can be checked byte by byte.
 * The reader checks the pattern and that exactly N * S bytes arrived; it exits 1 otherwise.
 *
 * Output (stdout, one JSON line):
 *   {"calls":N,"size":S,"seconds":..,"us_per_call":..,"bytes_read":..,"writer_pid":..,
 *    "reader_pid":..,"read_calls":..,"write_func":"SSL_write","read_func":"SSL_read",
 *    "pattern":"mod251"}
 * seconds runs from just before the first write to the moment the reader has every byte.
 *
 * With --wait-start FILE both sides finish the handshake, the parent prints
 * {"ready":true,"writer_pid":..,"reader_pid":..} on stderr, and neither side calls
 * SSL_read/SSL_write until FILE exists: a tracer can attach in between.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define PATTERN_MOD 251
#define WAIT_START_LIMIT_MS (120 * 1000)

struct options {
	uint64_t calls;
	uint64_t size;
	uint64_t read_size;
	int read_ex;
	int write_ex;
	int verify;
	const char *wait_start;
	long delay_ms;
};

/* What each child reports to the parent through the result pipe. */
struct result {
	int kind; /* 'R' reader, 'W' writer */
	int ok;
	double t_start; /* writer: before the first write */
	double t_end;	/* writer: after the last write; reader: when the last byte arrived */
	uint64_t bytes;
	uint64_t calls;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die_ssl(const char *what)
{
	fprintf(stderr, "loadgen: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: loadgen -n CALLS -s SIZE [--read-ex] [--write-ex] [--ex]\n"
		   "               [--wait-start FILE] [--delay-ms MS] [--read-size BYTES] [--no-verify]\n"
		   "  -n, --calls N       number of SSL_write calls (suffix k/m: x1000/x1000000)\n"
		   "  -s, --size S        bytes per call (suffix K/M: KiB/MiB)\n"
		   "  --read-ex           reader uses SSL_read_ex instead of SSL_read\n"
		   "  --write-ex          writer uses SSL_write_ex instead of SSL_write\n"
		   "  --ex                both of the above\n"
		   "  --wait-start FILE   after the handshake, wait until FILE exists\n"
		   "  --delay-ms MS       after the handshake, sleep MS milliseconds\n"
		   "  --read-size BYTES   reader's buffer (default 16384)\n"
		   "  --no-verify         do not check the byte pattern (byte count is still checked)\n");
}

/* Parses a count with an optional suffix: k/m are decimal for -n, K/M binary for sizes. */
static uint64_t parse_count(const char *opt, const char *s, int binary)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		goto bad;
	if (*end == 'k' || *end == 'K') {
		v *= binary ? 1024 : 1000;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= binary ? 1024 * 1024 : 1000000;
		end++;
	}
	if (*end == '\0')
		return v;
bad:
	fprintf(stderr, "loadgen: bad value for %s: '%s'\n", opt, s);
	exit(2);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_READ_EX = 256, OPT_WRITE_EX, OPT_EX, OPT_WAIT, OPT_DELAY, OPT_READ_SIZE, OPT_NOVERIFY };
	static const struct option longopts[] = {
		{ "calls", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "read-ex", no_argument, NULL, OPT_READ_EX },
		{ "write-ex", no_argument, NULL, OPT_WRITE_EX },
		{ "ex", no_argument, NULL, OPT_EX },
		{ "wait-start", required_argument, NULL, OPT_WAIT },
		{ "delay-ms", required_argument, NULL, OPT_DELAY },
		{ "read-size", required_argument, NULL, OPT_READ_SIZE },
		{ "no-verify", no_argument, NULL, OPT_NOVERIFY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->read_size = 16384;
	o->verify = 1;
	while ((c = getopt_long(argc, argv, "n:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->calls = parse_count("-n", optarg, 0);
			break;
		case 's':
			o->size = parse_count("-s", optarg, 1);
			break;
		case OPT_READ_EX:
			o->read_ex = 1;
			break;
		case OPT_WRITE_EX:
			o->write_ex = 1;
			break;
		case OPT_EX:
			o->read_ex = o->write_ex = 1;
			break;
		case OPT_WAIT:
			o->wait_start = optarg;
			break;
		case OPT_DELAY:
			o->delay_ms = (long)parse_count("--delay-ms", optarg, 0);
			break;
		case OPT_READ_SIZE:
			o->read_size = parse_count("--read-size", optarg, 1);
			break;
		case OPT_NOVERIFY:
			o->verify = 0;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc || o->calls == 0 || o->size == 0) {
		usage(stderr);
		exit(2);
	}
	/* SSL_write takes an int length; keep the total well inside 64 bits too. */
	if (o->size > (1u << 30) || o->read_size == 0 || o->read_size > (1u << 30) ||
	    o->calls > UINT64_MAX / o->size) {
		fprintf(stderr, "loadgen: size must be 1..1 GiB, and calls*size must fit in 64 bits\n");
		exit(2);
	}
}

static EVP_PKEY *make_key(void)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	EVP_PKEY *pkey = NULL;

	if (!pctx || EVP_PKEY_keygen_init(pctx) <= 0 ||
	    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx, NID_X9_62_prime256v1) <= 0 ||
	    EVP_PKEY_keygen(pctx, &pkey) <= 0)
		die_ssl("EC key generation");
	EVP_PKEY_CTX_free(pctx);
	return pkey;
}

static X509 *make_cert(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (!x)
		die_ssl("X509_new");
	X509_set_version(x, 2); /* v3 */
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
	if (!X509_set_pubkey(x, pkey))
		die_ssl("X509_set_pubkey");
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
					-1, -1, 0))
		die_ssl("X509_NAME_add_entry_by_txt");
	/* Self-signed: the issuer is the subject. */
	if (!X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256()))
		die_ssl("X509_sign");
	return x;
}

static SSL_CTX *make_ctx(int server, EVP_PKEY *pkey, X509 *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	if (!ctx)
		die_ssl("SSL_CTX_new");
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		die_ssl("setting TLS 1.3");
	if (server) {
		if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1)
			die_ssl("loading the certificate");
		/* No session tickets: the client never reads, and tickets would be stray traffic. */
		SSL_CTX_set_num_tickets(ctx, 0);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

/* Blocks until the start condition holds (file exists and/or delay elapsed). */
static void wait_for_start(const struct options *o)
{
	if (o->wait_start) {
		long waited = 0;

		while (access(o->wait_start, F_OK) != 0) {
			if (waited >= WAIT_START_LIMIT_MS) {
				fprintf(stderr, "loadgen: %s did not appear within %d s\n", o->wait_start,
					WAIT_START_LIMIT_MS / 1000);
				exit(1);
			}
			usleep(2000);
			waited += 2;
		}
	}
	if (o->delay_ms > 0)
		usleep((useconds_t)o->delay_ms * 1000);
}

static void send_result(int fd, const struct result *r)
{
	if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		die_errno("writing result");
}

static void signal_ready(int fd)
{
	if (write(fd, "r", 1) != 1)
		die_errno("writing ready");
}

/* A buffer where buf[k] = k % 251, long enough to start at any phase and still hold len bytes. */
static unsigned char *pattern_buffer(uint64_t len)
{
	unsigned char *b = malloc(len + PATTERN_MOD);

	if (!b)
		die_errno("malloc");
	for (uint64_t k = 0; k < len + PATTERN_MOD; k++)
		b[k] = (unsigned char)(k % PATTERN_MOD);
	return b;
}

static int run_reader(const struct options *o, int lfd, SSL_CTX *ctx, int ready_fd, int res_fd)
{
	const uint64_t want = o->calls * o->size;
	unsigned char *buf = malloc(o->read_size);
	unsigned char *pat = o->verify ? pattern_buffer(o->read_size) : NULL;
	struct result r = { .kind = 'R', .ok = 1 };
	uint64_t pos = 0;
	int fd, err;
	SSL *ssl;

	if (!buf)
		die_errno("malloc");
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die_errno("accept");
	close(lfd);
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1)
		die_ssl("reader handshake (SSL_accept)");
	signal_ready(ready_fd);
	wait_for_start(o);

	for (;;) {
		size_t got = 0;
		int ret;

		if (o->read_ex) {
			ret = SSL_read_ex(ssl, buf, o->read_size, &got);
		} else {
			ret = SSL_read(ssl, buf, (int)o->read_size);
			got = ret > 0 ? (size_t)ret : 0;
		}
		if (ret <= 0) {
			err = SSL_get_error(ssl, ret);
			if (err == SSL_ERROR_ZERO_RETURN)
				break; /* close_notify: the writer is done */
			fprintf(stderr, "loadgen: reader: %s failed after %llu bytes (SSL error %d)\n",
				o->read_ex ? "SSL_read_ex" : "SSL_read", (unsigned long long)pos, err);
			ERR_print_errors_fp(stderr);
			r.ok = 0;
			break;
		}
		r.calls++;
		if (pat && r.ok && memcmp(buf, pat + pos % PATTERN_MOD, got) != 0) {
			fprintf(stderr, "loadgen: reader: pattern mismatch in bytes %llu..%llu\n",
				(unsigned long long)pos, (unsigned long long)(pos + got));
			r.ok = 0;
		}
		pos += got;
		if (pos == want)
			r.t_end = now_s();
	}
	if (pos != want) {
		fprintf(stderr, "loadgen: reader: got %llu bytes, expected %llu\n",
			(unsigned long long)pos, (unsigned long long)want);
		r.ok = 0;
	}
	if (r.t_end == 0)
		r.t_end = now_s();
	r.bytes = pos;
	send_result(res_fd, &r);
	SSL_free(ssl);
	close(fd);
	return r.ok ? 0 : 1;
}

static int run_writer(const struct options *o, int port, SSL_CTX *ctx, int ready_fd, int res_fd)
{
	unsigned char *pat = pattern_buffer(o->size);
	const uint64_t step = o->size % PATTERN_MOD;
	struct result r = { .kind = 'W', .ok = 1 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint64_t phase = 0;
	int fd, one = 1;
	SSL *ssl;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die_errno("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die_errno("connect");
	/* The stream never waits on a reply; NODELAY just keeps the last segment from lingering. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1)
		die_ssl("writer handshake (SSL_connect)");
	signal_ready(ready_fd);
	wait_for_start(o);

	r.t_start = now_s();
	for (uint64_t i = 0; i < o->calls; i++) {
		int ok;

		/* Call i starts at stream offset i * size, so at phase (i * size) % 251. */
		if (o->write_ex) {
			size_t written = 0;

			ok = SSL_write_ex(ssl, pat + phase, o->size, &written) == 1 &&
			     written == o->size;
		} else {
			ok = SSL_write(ssl, pat + phase, (int)o->size) == (int)o->size;
		}
		if (!ok) {
			fprintf(stderr, "loadgen: writer: %s call %llu failed\n",
				o->write_ex ? "SSL_write_ex" : "SSL_write", (unsigned long long)i);
			ERR_print_errors_fp(stderr);
			r.ok = 0;
			break;
		}
		r.calls++;
		r.bytes += o->size;
		phase = (phase + step) % PATTERN_MOD;
	}
	r.t_end = now_s();
	/* One-way shutdown: send close_notify so the reader sees a clean end. */
	SSL_shutdown(ssl);
	send_result(res_fd, &r);
	SSL_free(ssl);
	close(fd);
	return r.ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct options o;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	int lfd, ready_pipe[2], res_pipe[2], ready = 0, failed = 0, alive = 2;
	pid_t reader, writer;
	struct result rr = { 0 }, wr = { 0 }, tmp;
	EVP_PKEY *pkey;
	X509 *cert;
	ssize_t n;

	parse_args(argc, argv, &o);
	signal(SIGPIPE, SIG_IGN);
	pkey = make_key();
	cert = make_cert(pkey);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0)
		die_errno("listening on 127.0.0.1");
	if (pipe(ready_pipe) != 0 || pipe(res_pipe) != 0)
		die_errno("pipe");
	fflush(NULL);

	reader = fork();
	if (reader < 0)
		die_errno("fork");
	if (reader == 0) {
		close(ready_pipe[0]);
		close(res_pipe[0]);
		exit(run_reader(&o, lfd, make_ctx(1, pkey, cert), ready_pipe[1], res_pipe[1]));
	}
	close(lfd);
	writer = fork();
	if (writer < 0) {
		kill(reader, SIGKILL);
		die_errno("fork");
	}
	if (writer == 0) {
		close(ready_pipe[0]);
		close(res_pipe[0]);
		exit(run_writer(&o, ntohs(sa.sin_port), make_ctx(0, NULL, NULL), ready_pipe[1],
				res_pipe[1]));
	}
	close(ready_pipe[1]);
	close(res_pipe[1]);

	/* Watch for the two handshakes and for either child dying (then stop the other one). */
	while (alive > 0) {
		struct pollfd p = { .fd = ready_pipe[0], .events = POLLIN };
		int status;
		pid_t pid;

		if (p.fd >= 0 && poll(&p, 1, 20) > 0) {
			char c[2];

			n = read(ready_pipe[0], c, sizeof(c));
			if (n <= 0) {
				close(ready_pipe[0]);
				ready_pipe[0] = -1;
			} else {
				ready += (int)n;
				if (ready == 2 && o.wait_start) {
					fprintf(stderr, "{\"ready\":true,\"writer_pid\":%d,\"reader_pid\":%d}\n",
						(int)writer, (int)reader);
					fflush(stderr);
				}
			}
		} else if (p.fd < 0) {
			usleep(20000);
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			alive--;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				failed = 1;
				kill(pid == reader ? writer : reader, SIGTERM);
			}
		}
	}

	while ((n = read(res_pipe[0], &tmp, sizeof(tmp))) == (ssize_t)sizeof(tmp)) {
		if (tmp.kind == 'R')
			rr = tmp;
		else if (tmp.kind == 'W')
			wr = tmp;
	}
	if (failed || !rr.ok || !wr.ok || rr.kind != 'R' || wr.kind != 'W' ||
	    rr.bytes != o.calls * o.size) {
		fprintf(stderr, "loadgen: run failed (reader got %llu of %llu bytes)\n",
			(unsigned long long)rr.bytes, (unsigned long long)(o.calls * o.size));
		return 1;
	}

	{
		double seconds = rr.t_end - wr.t_start;
		/* The writer's and reader's CPU (both reaped above): what the traced program leaves free. */
		struct rusage ru;
		double cpu_seconds = getrusage(RUSAGE_CHILDREN, &ru) == 0
					     ? (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
						       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6
					     : -1;

		printf("{\"calls\":%llu,\"size\":%llu,\"seconds\":%.6f,\"us_per_call\":%.3f,"
		       "\"bytes_read\":%llu,\"writer_pid\":%d,\"reader_pid\":%d,\"read_calls\":%llu,"
		       "\"write_seconds\":%.6f,\"write_func\":\"%s\",\"read_func\":\"%s\","
		       "\"pattern\":\"mod251\",\"cpu_seconds\":%.6f}\n",
		       (unsigned long long)o.calls, (unsigned long long)o.size, seconds,
		       seconds * 1e6 / (double)o.calls, (unsigned long long)rr.bytes, (int)writer,
		       (int)reader, (unsigned long long)rr.calls, wr.t_end - wr.t_start,
		       o.write_ex ? "SSL_write_ex" : "SSL_write", o.read_ex ? "SSL_read_ex" : "SSL_read",
		       cpu_seconds);
	}
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return 0;
}
