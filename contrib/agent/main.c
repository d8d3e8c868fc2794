/*
 * main.c: vmshim-agent's command line, start-up and shutdown.
 *
 * main() runs three steps on the main thread: main_parse reads the options (bad usage: one
 * line on stderr, exit 2); main_setup blocks SIGCHLD, SIGTERM and SIGINT before anything else
 * exists (they are taken from signalfds in the loop), ignores SIGPIPE, creates the one
 * event_base (after evthread_use_pthreads), opens the listeners and confines the agent; the
 * loop then runs until SIGTERM/SIGINT, and main_stop shuts down.
 *
 * Shutdown (documented choice): the agent stops listening, sends SIGKILL to the process group
 * of every process it still runs (inside a VM nobody else would ever reap them, and in local-VM
 * mode they would outlive their manager), reaps what exits within a second, closes every
 * connection and descriptor and exits 0.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "agent.h"
#include "confine.h"
#include "log.h"
#include "runner.h"
#include "util.h"

struct agent agent;

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: vmshim-agent (--vsock-port N | --listen-uds PATH) [--stream-port N]\n"
	    "                    [--runtime PATH] [--state-dir DIR] [--log FILE] [--debug]\n"
	    "                    [--no-seccomp] [--version] [--help]\n"
	    "\n"
	    "  --vsock-port N      listen on AF_VSOCK: control port N (default 1024) and the\n"
	    "                      stream port\n"
	    "  --listen-uds PATH   be the local VM: one Unix socket (0600) with the hybrid\n"
	    "                      vsock handshake (CONNECT <port>)\n"
	    "  --control-port N    control port for --listen-uds (default 1024)\n"
	    "  --stream-port N     stream port (default 1025)\n"
	    "  --runtime PATH      run containers with this OCI runtime (e.g. /usr/sbin/runc);\n"
	    "                      without it processes are forked directly\n"
	    "  --state-dir DIR     runner scratch files (default /run/vmshim-agent, or\n"
	    "                      PATH.state with --listen-uds)\n"
	    "  --log FILE          log JSON lines to FILE (default stderr)\n"
	    "  --debug             log at debug level\n"
	    "  --no-seccomp        do not load the agent's seccomp filter (docs/SECCOMP.md)\n");
}

static void __attribute__((noreturn, format(printf, 1, 2))) main_bad_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vmshim-agent: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	exit(2);
}

static uint32_t
main_port(const char *opt, const char *arg)
{
	uint32_t v;

	if (parse_u32(arg, &v) < 0)
		main_bad_usage("%s: expected a port number (decimal u32)", opt);
	return v;
}

/* SIGTERM / SIGINT: leave the loop. */
static void
main_signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
		log_info("signal %u: shutting down", si.ssi_signo);
		agent.shutting_down = true;
	}
	if (agent.shutting_down)
		event_base_loopbreak(agent.base);
}

/* Make sure fds 0-2 are open, so no pipe or socket ever lands there. */
static void
main_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

/*
 * A VMSHIM_TEST_* knob in milliseconds, min..max: true with *ms set when the variable is set
 * and valid; an invalid value is logged and ignored.
 */
static bool
main_test_ms(const char *name, uint32_t min, uint32_t max, uint32_t *ms)
{
	const char *v = getenv(name);

	if (v == NULL)
		return false;
	if (parse_u32(v, ms) < 0 || *ms < min || *ms > max) {
		log_warn("ignoring %s=%s: expected milliseconds (%u..%u)", name, v, min, max);
		return false;
	}
	return true;
}

/*
 * Test-only knobs, which for vmshim and vmshim-agent alike are VMSHIM_TEST_* environment
 * variables (docs/RELIABILITY.md, "Test-only knobs"), each logged when in effect:
 * VMSHIM_TEST_BRINGUP_OVERLAP=1 drops every control connection when two container bring-ups
 * overlap (control-overlap.c); VMSHIM_TEST_DRAIN_MAX_MS shortens AGENT_DRAIN_MAX_MS;
 * VMSHIM_TEST_SPAN_HOLD_MS holds each MountDisk that opens a bring-up that long before it goes
 * on, so two bring-ups the shim lets run together certainly overlap.
 */
static void
main_test_knobs(void)
{
	const char *v = getenv("VMSHIM_TEST_BRINGUP_OVERLAP");
	uint32_t ms;

	if (v != NULL && strcmp(v, "1") == 0) {
		agent.test_bringup_overlap = true;
		log_warn("VMSHIM_TEST_BRINGUP_OVERLAP: control connections dropped when bring-ups "
			 "overlap (test knob)");
	}
	if (main_test_ms("VMSHIM_TEST_DRAIN_MAX_MS", 1, INT32_MAX, &ms)) {
		agent.drain_max_ms = (int)ms;
		log_warn("VMSHIM_TEST_DRAIN_MAX_MS: output drain limit %u ms (test knob)", ms);
	}
	if (main_test_ms("VMSHIM_TEST_SPAN_HOLD_MS", 0, 60000, &ms)) {
		agent.test_span_hold_ms = (int)ms;
		log_warn(
		    "VMSHIM_TEST_SPAN_HOLD_MS: each MountDisk span held %u ms (test knob)", ms);
	}
}

/* What the command line asks for, beyond what goes straight into `agent`. */
struct main_opts {
	const char *uds;     /* --listen-uds, or NULL for --vsock-port */
	const char *logfile; /* --log, or NULL for stderr */
	char *state_dir;     /* owned by main() */
	bool vsock, debug, confine;
};

static struct event *main_sigev; /* SIGTERM / SIGINT, read from main_sigfd */
static int main_sigfd = -1;

/*
 * Parse the options into o and `agent` (bad usage: a line on stderr, exit 2). False when the
 * agent has nothing more to do (--version, --help).
 */
static bool
main_parse(int argc, char **argv, struct main_opts *o)
{
	static const struct option opts[] = {
	    {"vsock-port", required_argument, NULL, 'v'},
	    {"listen-uds", required_argument, NULL, 'u'},
	    {"control-port", required_argument, NULL, 'c'},
	    {"stream-port", required_argument, NULL, 's'},
	    {"runtime", required_argument, NULL, 'r'},
	    {"state-dir", required_argument, NULL, 'S'},
	    {"log", required_argument, NULL, 'l'},
	    {"debug", no_argument, NULL, 'd'},
	    {"no-seccomp", no_argument, NULL, 'N'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	agent.control_port = PROTOCOL_AGENT_PORT;
	agent.stream_port = PROTOCOL_STREAM_PORT;
	agent.drain_max_ms = AGENT_DRAIN_MAX_MS;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			o->vsock = true;
			agent.control_port = main_port("--vsock-port", optarg);
			break;
		case 'u':
			o->uds = optarg;
			break;
		case 'c':
			agent.control_port = main_port("--control-port", optarg);
			break;
		case 's':
			agent.stream_port = main_port("--stream-port", optarg);
			break;
		case 'r':
			agent.runtime = optarg;
			break;
		case 'S':
			free(o->state_dir);
			o->state_dir = xstrdup(optarg);
			break;
		case 'l':
			o->logfile = optarg;
			break;
		case 'd':
			o->debug = true;
			break;
		case 'N':
			o->confine = false;
			break;
		case 'V':
			printf("vmshim-agent %s\n", AGENT_VERSION);
			return false;
		case 'h':
			main_usage(stdout);
			return false;
		case ':':
			main_bad_usage("%s needs an argument", argv[optind - 1]);
		default:
			main_bad_usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		main_bad_usage("unexpected argument %s", argv[optind]);
	if (o->vsock == (o->uds != NULL))
		main_bad_usage("%s", "give exactly one of --vsock-port N and --listen-uds PATH");
	if (agent.control_port == agent.stream_port)
		main_bad_usage("%s", "the control and stream ports must differ");
	if (agent.runtime != NULL && access(agent.runtime, X_OK) < 0)
		main_bad_usage("--runtime %s: not an executable", agent.runtime);
	if (o->state_dir == NULL) {
		if (o->uds != NULL)
			xasprintf(&o->state_dir, "%s.state", o->uds);
		else
			o->state_dir = xstrdup("/run/vmshim-agent");
	}
	agent.state_dir = o->state_dir;
	agent.local_vm = o->uds != NULL;
	agent.runner = agent.runtime != NULL ? &runner_oci_ops : &runner_process_ops;
	return true;
}

/* Log to stderr and to the log, for a start-up failure. */
static int
main_fail(const struct status *st)
{
	log_error("%s", st->msg);
	fprintf(stderr, "vmshim-agent: %s\n", st->msg);
	return 1;
}

/*
 * Set up everything the loop needs: the log, the signal mask (before any thread exists), the
 * event_base, the signalfd, the process table, the listeners, then the seccomp filter. 0, or
 * the exit code after a message.
 */
static int
main_setup(const struct main_opts *o)
{
	struct status st;
	sigset_t set;

	main_std_fds();
	if (log_open(o->logfile, &st) < 0) {
		fprintf(stderr, "vmshim-agent: %s\n", st.msg);
		return 1;
	}
	log_set_level(o->debug ? LOG_DEBUG : LOG_INFO);
	main_test_knobs();

	/* Before any thread exists, so every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (evthread_use_pthreads() < 0)
		fatalx("evthread_use_pthreads failed");
	log_route_libevent();
	agent.base = event_base_new();
	if (agent.base == NULL)
		fatalx("event_base_new failed");

	sigdelset(&set, SIGCHLD);
	main_sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (main_sigfd < 0)
		fatal("signalfd");
	main_sigev = event_new(agent.base, main_sigfd, EV_READ | EV_PERSIST, main_signal_cb, NULL);
	event_add(main_sigev, NULL);

	if (agent.runner == &runner_oci_ops && mkdir_p(o->state_dir, 0700) < 0) {
		log_error("state dir %s: %s", o->state_dir, strerror(errno));
		return 1;
	}
	control_init();
	stream_init();
	if (proc_init(&st) < 0 ||
	    (o->uds != NULL ? listen_uds(o->uds, &st)
			    : listen_vsock(agent.control_port, agent.stream_port, &st)) < 0)
		return main_fail(&st);
	/*
	 * Confine once the listeners exist. The agent's profile is a deny-list (docs/SECCOMP.md):
	 * the filter is inherited by runc and every workload, which need execve, mount and more.
	 */
	if (o->confine && confine_apply(CONFINE_PROFILE_AGENT, &st) < 0)
		return main_fail(&st);
	log_info("vmshim-agent %s started (runner %s, pid %d, seccomp %s)", AGENT_VERSION,
	    agent.runner->name, (int)getpid(), o->confine ? confine_state() : "off (--no-seccomp)");
	return 0;
}

/* After the loop: stop listening, kill and reap the workload, close everything. */
static void
main_stop(void)
{
	listen_close();
	proc_kill_all(1000);
	control_shutdown();
	stream_close_all();
	/* Let closing control connections flush and run their on_close. */
	event_base_loop(agent.base, EVLOOP_NONBLOCK);
	proc_shutdown();
	event_free(main_sigev);
	close(main_sigfd);
	event_base_free(agent.base);
	log_info("vmshim-agent stopped");
	log_close();
}

int
main(int argc, char **argv)
{
	struct main_opts o = {.confine = true};
	int rc = 0;

	if (main_parse(argc, argv, &o)) {
		rc = main_setup(&o);
		if (rc == 0) {
			event_base_dispatch(agent.base);
			main_stop();
		}
	}
	free(o.state_dir);
	return rc;
}
