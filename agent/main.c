// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tlstap-agent: the small, static program tlstap runs on a device or server without Node
 * (docs/agent.md). It answers requests framed as in protocol.h on stdin with responses on stdout;
 * it only reads files and /proc and, through the capture core (native/core/tlstap_core.h), loads,
 * attaches and polls.
 * All judgement stays in the front end. When stdin closes it detaches everything and exits.
 */
#include "files.h"
#include "plan.h"
#include "protocol.h"
#include "requests.h"
#include "tlstap_core.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t agent_stop_signal;

static void on_signal(int sig)
{
	agent_stop_signal = sig;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: tlstap-agent [--root DIR]\n"
		    "       tlstap-agent --plan PLAN --record FILE [--duration SECONDS]\n"
		    "  Serves the tlstap agent protocol (docs/agent.md) on stdin/stdout; started by `tlstap --remote`.\n"
		    "  --root DIR       look up every requested path under DIR (a device image, a test fixture)\n"
		    "  --plan PLAN      run the capture a front end planned, with no front end attached...\n"
		    "  --record FILE    ...into this new recording, for `tlstap replay` (mode 0600)\n"
		    "  --duration S     stop after S seconds (else at SIGINT, SIGTERM or SIGHUP)\n"
		    "  --version        print the agent and protocol versions\n");
}

/* Serves requests from stdin until it closes, BYE, a signal, or a write error. */
static int serve(void)
{
	struct buf request = { 0 }, result = { 0 };
	int status = 0, bye = 0;

	while (!bye && !agent_stop_signal) {
		int rfd = ring_fd();
		struct pollfd fds[2] = { { STDIN_FILENO, POLLIN, 0 }, { rfd, POLLIN, 0 } };
		int n = poll(fds, rfd >= 0 ? 2 : 1, ring_timeout_ms());
		if (n < 0 && errno != EINTR) {
			status = 1;
			break;
		}
		/* Records that came in quietly are read on the timer, as the addon's poller does. */
		if (ring_service() != 0)
			break; /* stdout closed */
		if (n <= 0 || !(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;

		uint32_t id = 0, op = 0;
		char mark[4];
		const char *why = "";
		int r = frame_read(STDIN_FILENO, TLSTAP_AGENT_MAX_REQUEST, mark, &id, &request, &why);
		if (r > 0 && memcmp(mark, TLSTAP_AGENT_MARK_REQUEST, 4) != 0) {
			r = -EPROTO;
			why = "bad frame marker";
		}
		if (r == 0)
			break; /* stdin closed: the front end is gone */
		if (r < 0) {
			if (r == -EINTR)
				continue;
			if (r != -EPIPE)
				fprintf(stderr, "tlstap-agent: bad request stream: %s\n", r == -EPROTO ? why : strerror(-r));
			status = r == -EPIPE ? 0 : 1;
			break;
		}
		int ret = request_run(request.data, request.len, &result, &op, &bye);
		struct buf out = { 0 };
		buf_add32(&out, (uint32_t)ret);
		if (ret == 0)
			buf_add(&out, result.data, result.len);
		else
			buf_add(&out, request_error(op, ret), strlen(request_error(op, ret)));
		int err = out.failed ? -ENOMEM : frame_write(STDOUT_FILENO, TLSTAP_AGENT_MARK_RESPONSE, id, out.data, out.len);
		buf_free(&out);
		if (err != 0)
			break; /* stdout closed */
	}
	buf_free(&request);
	buf_free(&result);
	return status;
}

int main(int argc, char **argv)
{
	const char *plan = NULL, *record = NULL;
	unsigned long duration = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
			files_set_root(argv[++i]);
		} else if (strcmp(argv[i], "--plan") == 0 && i + 1 < argc) {
			plan = argv[++i];
		} else if (strcmp(argv[i], "--record") == 0 && i + 1 < argc) {
			record = argv[++i];
		} else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			char *end;
			duration = strtoul(argv[++i], &end, 10);
			if (*end || duration == 0) {
				fprintf(stderr, "tlstap-agent: --duration wants a whole number of seconds, got '%s'\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("tlstap-agent %s protocol %d\n", TLSTAP_AGENT_VERSION, TLSTAP_AGENT_PROTOCOL);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tlstap-agent: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!plan != !record) {
		fprintf(stderr, "tlstap-agent: --plan and --record go together\n");
		return 2;
	}
	if (!plan && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "tlstap-agent: stdout is a terminal; this program is started by `tlstap --remote`\n");
		return 2;
	}

	/* A write to a closed pipe fails with EPIPE instead of killing us before we detach. */
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal; /* no SA_RESTART: a signal ends a blocked read or poll */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	tlstap_core_init();
	int status = plan ? plan_record(plan, record, duration) : serve();
	requests_release();
	files_close_all();
	if (agent_stop_signal && !plan)
		fprintf(stderr, "tlstap-agent: stopped by signal %d; probes detached\n", (int)agent_stop_signal);
	return status;
}
