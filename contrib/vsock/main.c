/*
 * main.c: vmshim-vsock's command line, start-up and shutdown.
 *
 * Start-up: parse the options (bad usage: one line on stderr, exit 2), open the log, create
 * the event base, then listen on both sockets. Each socket is bound under a temporary name and
 * renamed into place once it listens, so whoever waits for the path (QEMU's connect, the shim)
 * never finds it refusing connections. Then the process confines itself with the shim's
 * seccomp profile (threads only, Unix sockets, no exec) and runs the loop.
 *
 * The loop ends when QEMU disconnects (it never reconnects: the device is gone) or on
 * SIGTERM/SIGINT; every connection and mapping is then released and the sockets are
 * unlinked. Exit status 0, or 1 when start-up failed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "confine.h"
#include "log.h"
#include "transport.h"
#include "util.h"
#include "vsock.h"

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: vmshim-vsock --vhost-user PATH --uds PATH [--cid N] [--log FILE] [--debug]\n"
	    "                    [--no-seccomp] [--version] [--help]\n"
	    "\n"
	    "  --vhost-user PATH  listen here for QEMU's vhost-user-vsock-pci chardev\n"
	    "  --uds PATH         the guest's vsock on the host: connect and write\n"
	    "                     \"CONNECT <port>\\n\"; the guest's connections to host port P\n"
	    "                     go to PATH_P\n"
	    "  --cid N            the guest's context id (default 3)\n"
	    "  --log FILE         log JSON lines to FILE (default stderr)\n"
	    "  --debug            log at debug level\n"
	    "  --no-seccomp       do not confine the process with seccomp\n");
}

static void __attribute__((noreturn, format(printf, 1, 2))) main_bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmshim-vsock: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	exit(2);
}

/* Listen on path, appearing there only once it accepts. fd, or -1 with *st. */
static int
main_listen(const char *path, struct status *st)
{
	cleanup_free char *tmp = NULL;
	int fd;

	xasprintf(&tmp, "%s.%d.tmp", path, (int)getpid());
	if ((fd = transport_listen_unix(tmp, 0600, 64, st)) < 0)
		return -1;
	if (rename(tmp, path) < 0) {
		int err = errno;
		unlink(tmp);
		close(fd);
		return status_errno(st, ST_INTERNAL, err, "rename %s to %s", tmp, path);
	}
	return fd;
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(arg, NULL);
}

/* Make sure fds 0-2 are open, so no socket ever lands there. */
static void
main_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0 && fd <= 2)
		(void)fcntl(fd, F_SETFD, 0);
	if (fd > 2)
		close(fd);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"vhost-user", required_argument, NULL, 'v'},
	    {"uds", required_argument, NULL, 'u'},
	    {"cid", required_argument, NULL, 'c'},
	    {"log", required_argument, NULL, 'l'},
	    {"debug", no_argument, NULL, 'd'},
	    {"no-seccomp", no_argument, NULL, 'N'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *vu_path = NULL, *logfile = NULL;
	bool debug = false, confine = true;
	struct event *sigterm, *sigint;
	struct vsock vs;
	struct status st;
	uint32_t cid = 3;
	int c, vu_fd;

	memset(&vs, 0, sizeof vs);
	vs.listen_fd = -1;
	vs.vu_fd = -1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			vu_path = optarg;
			break;
		case 'u':
			if (strlen(optarg) + 12 > sizeof vs.uds_path)
				main_bad_usage("--uds %s: path too long for a socket", optarg);
			snprintf(vs.uds_path, sizeof vs.uds_path, "%s", optarg);
			break;
		case 'c':
			/* 0-2 are reserved (hypervisor, local, host); U32_MAX is "any". */
			if (parse_u32(optarg, &cid) < 0 || cid < 3 || cid == UINT32_MAX)
				main_bad_usage("--cid: expected a context id from 3 to 4294967294");
			break;
		case 'l':
			logfile = optarg;
			break;
		case 'd':
			debug = true;
			break;
		case 'N':
			confine = false;
			break;
		case 'V':
			printf("vmshim-vsock %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			main_usage(stdout);
			return 0;
		case ':':
			main_bad_usage("%s needs an argument", argv[optind - 1]);
		default:
			main_bad_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		main_bad_usage("unexpected argument %s", argv[optind]);
	if (vu_path == NULL || vs.uds_path[0] == '\0')
		main_bad_usage("%s", "--vhost-user PATH and --uds PATH are required");
	vs.guest_cid = cid;

	main_std_fds();
	if (log_open(logfile, &st) < 0) {
		fprintf(stderr, "vmshim-vsock: %s\n", st.msg);
		return 1;
	}
	log_set_level(debug ? LOG_DEBUG : LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	log_route_libevent();
	if ((vs.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	sigterm = evsignal_new(vs.base, SIGTERM, main_signal_cb, vs.base);
	sigint = evsignal_new(vs.base, SIGINT, main_signal_cb, vs.base);
	if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) < 0 ||
	    event_add(sigint, NULL) < 0)
		fatalx("signal events");

	conn_init(&vs);
	if ((vu_fd = main_listen(vu_path, &st)) < 0 ||
	    (vs.listen_fd = main_listen(vs.uds_path, &st)) < 0 || vu_start(&vs, vu_fd, &st) < 0 ||
	    host_listen(&vs, &st) < 0 ||
	    (confine && confine_apply(CONFINE_PROFILE_SHIM, &st) < 0)) {
		log_error("%s", st.msg);
		fprintf(stderr, "vmshim-vsock: %s\n", st.msg);
		unlink(vu_path);
		unlink(vs.uds_path);
		return 1;
	}
	log_info("vmshim-vsock %s started (guest cid %u, pid %d, seccomp %s)", PACKAGE_VERSION, cid,
	    (int)getpid(), confine ? confine_state() : "off (--no-seccomp)");

	event_base_dispatch(vs.base);

	conn_free_all(&vs);
	host_free(&vs);
	vu_free(&vs);
	unlink(vu_path);
	unlink(vs.uds_path);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(vs.base);
	log_info("vmshim-vsock stopped");
	log_close();
	return 0;
}
