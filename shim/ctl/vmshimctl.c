/*
 * vmshimctl.c: the command-line client of vmshim's control API (docs/CONTRACT.md 4), for people and
 * scripts.
 *
 * main() parses the global options, takes the address (-a, else $VMSHIM_ADDRESS) and
 * runs one command from ctl_commands[]: each checks its arguments first (so a usage error
 * exits 2 without touching the network), then maps its arguments onto the payload of one Task
 * method, calls it through an rpc_client (one reader thread, calls from the main thread) and
 * prints a short human line, or the raw response payload with --json. Errors print
 * "vmshimctl: METHOD: CODE_NAME: message" on stderr. Exit status: 0 ok, 1 an error status from
 * the shim or the transport, 2 bad usage. `run` lives in ctl-run.c. Single-threaded apart from
 * the client's reader thread, which also prints events for `events`.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "msg.h"
#include "rpc.h"
#include "transport.h"
#include "util.h"

#define CTL_DEFAULT_TIMEOUT_MS 30000
#define CTL_MAX_MESSAGE	       (4u * 1024 * 1024)

static const char ctl_usage_text[] =
    "usage: vmshimctl [-a ADDRESS] [--json] [--timeout MS] COMMAND [ARGS]\n"
    "\n"
    "ADDRESS is unix:///PATH, unix:PATH, uds:PATH:PORT or vsock:CID:PORT (default: "
    "$VMSHIM_ADDRESS).\n"
    "\n"
    "commands:\n"
    "  create ID --bundle DIR [--stdin P] [--stdout P] [--stderr P] [--terminal]\n"
    "         [--rootfs-block IMAGE]\n"
    "  start ID [--exec-id E]\n"
    "  exec ID EXEC_ID [--stdin P] [--stdout P] [--stderr P] [--terminal] [--env K=V]...\n"
    "       [--cwd DIR] -- ARGS...\n"
    "  state ID [--exec-id E]\n"
    "  ps ID\n"
    "  kill ID [--exec-id E] [--signal N|NAME] [--all]\n"
    "  wait ID [--exec-id E]\n"
    "  pause ID | resume ID\n"
    "  update ID RESOURCES_JSON\n"
    "  stats ID\n"
    "  close-stdin ID [--exec-id E]\n"
    "  resize ID WIDTH HEIGHT [--exec-id E]\n"
    "  delete ID [--exec-id E]\n"
    "  connect ID\n"
    "  shutdown ID [--now]\n"
    "  events                       print each event as a line until interrupted\n"
    "  call SERVICE METHOD JSON     any method, the response payload printed as JSON\n"
    "  run [--id ID] [--bundle DIR] [--terminal] -- ARGS...\n"
    "                               create, start, attach stdio, wait, delete; exits with the\n"
    "                               process's status\n"
    "\n"
    "Exit status: 0 ok, 1 error from the shim or the transport, 2 usage.\n";

void
ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("vmshimctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(vmshimctl --help for usage)\n", stderr);
	exit(CTL_EXIT_USAGE);
}

char *
ctl_abspath(const char *path)
{
	char cwd[PATH_MAX];
	char *out;

	if (path[0] == '/' || path[0] == '\0')
		return xstrdup(path);
	if (getcwd(cwd, sizeof cwd) == NULL)
		return xstrdup(path);
	xasprintf(&out, "%s/%s", cwd, path);
	return out;
}

json_t *
ctl_process_spec(char **args, int nargs, bool terminal)
{
	json_t *jargs = json_array();
	int i;

	for (i = 0; i < nargs; i++)
		json_array_append_new(jargs, json_string(args[i]));
	return json_pack("{s:b,s:o,s:[s],s:s}", "terminal", terminal, "args", jargs, "env",
	    CTL_DEFAULT_PATH, "cwd", "/");
}

/* Call a Task method (payload stolen), printing the error line on failure. */
int
ctl_task(struct ctl *ctl, const char *method, json_t *payload, int timeout_ms, json_t **resp)
{
	struct status st;
	int r;

	r = rpc_client_call(
	    ctl_client(ctl), PROTOCOL_TASK_SERVICE, method, payload, timeout_ms, resp, &st);
	json_decref(payload);
	if (r == 0)
		return 0;
	fprintf(stderr, "vmshimctl: %s: %s: %s\n", method, status_code_name(st.code), st.msg);
	return -1;
}

/* Print a payload as one compact JSON line. */
static void
ctl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (s != NULL)
		puts(s);
	free(s);
}

static const char *
ctl_str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "";
}

static json_int_t
ctl_int(json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

/* ---- argument parsing ---- */

/* Options shared by the commands; each command accepts the subset it lists. */
enum {
	OPT_EXEC_ID = 'e',
	OPT_BUNDLE = 'b',
	OPT_TERMINAL = 't',
	OPT_SIGNAL = 's',
	OPT_ALL = 'A',
	OPT_NOW = 'n',
	OPT_STDIN = 256,
	OPT_STDOUT,
	OPT_STDERR,
	OPT_ROOTFS_BLOCK,
	OPT_ENV,
	OPT_CWD,
};

struct ctl_args {
	const char *exec_id, *bundle, *stdin_path, *stdout_path, *stderr_path, *rootfs_block;
	const char *signal, *cwd;
	bool terminal, all, now;
	json_t *env; /* array of strings, or NULL */
	char **pos;  /* positional arguments */
	int npos;
};

static const struct option ctl_long_options[] = {
    {"exec-id", required_argument, NULL, OPT_EXEC_ID},
    {"bundle", required_argument, NULL, OPT_BUNDLE},
    {"terminal", no_argument, NULL, OPT_TERMINAL},
    {"signal", required_argument, NULL, OPT_SIGNAL},
    {"all", no_argument, NULL, OPT_ALL},
    {"now", no_argument, NULL, OPT_NOW},
    {"stdin", required_argument, NULL, OPT_STDIN},
    {"stdout", required_argument, NULL, OPT_STDOUT},
    {"stderr", required_argument, NULL, OPT_STDERR},
    {"rootfs-block", required_argument, NULL, OPT_ROOTFS_BLOCK},
    {"env", required_argument, NULL, OPT_ENV},
    {"cwd", required_argument, NULL, OPT_CWD},
    {NULL, 0, NULL, 0},
};

/*
 * Parse a command's options (those in `allowed`, by their option value) and positionals.
 * npos_min..npos_max positionals are required (-1: any number more).
 */
static void
ctl_parse(const char *cmd, int argc, char **argv, const int *allowed, int npos_min, int npos_max,
    struct ctl_args *a)
{
	const int *p;
	int ch;

	memset(a, 0, sizeof *a);
	optind = 0; /* GNU: reinitialize for this argv */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", ctl_long_options, NULL)) != -1) {
		for (p = allowed; *p != 0 && *p != ch; p++)
			;
		if (ch == '?' || *p == 0)
			ctl_usage_error("%s: unknown or misused option %s", cmd, argv[optind - 1]);
		switch (ch) {
		case OPT_EXEC_ID:
			a->exec_id = optarg;
			break;
		case OPT_BUNDLE:
			a->bundle = optarg;
			break;
		case OPT_TERMINAL:
			a->terminal = true;
			break;
		case OPT_SIGNAL:
			a->signal = optarg;
			break;
		case OPT_ALL:
			a->all = true;
			break;
		case OPT_NOW:
			a->now = true;
			break;
		case OPT_STDIN:
			a->stdin_path = optarg;
			break;
		case OPT_STDOUT:
			a->stdout_path = optarg;
			break;
		case OPT_STDERR:
			a->stderr_path = optarg;
			break;
		case OPT_ROOTFS_BLOCK:
			a->rootfs_block = optarg;
			break;
		case OPT_ENV:
			if (a->env == NULL)
				a->env = json_array();
			json_array_append_new(a->env, json_string(optarg));
			break;
		case OPT_CWD:
			a->cwd = optarg;
			break;
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < npos_min || (npos_max >= 0 && a->npos > npos_max))
		ctl_usage_error("%s: expected %s%d argument%s, got %d", cmd,
		    npos_max < 0 ? "at least " : "", npos_min, npos_min == 1 ? "" : "s", a->npos);
}

/* Signal numbers by name, with or without "SIG". */
static int
ctl_parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int num;
	} sigs[] = {
	    {"HUP", SIGHUP},
	    {"INT", SIGINT},
	    {"QUIT", SIGQUIT},
	    {"KILL", SIGKILL},
	    {"USR1", SIGUSR1},
	    {"USR2", SIGUSR2},
	    {"TERM", SIGTERM},
	    {"CONT", SIGCONT},
	    {"STOP", SIGSTOP},
	    {"TSTP", SIGTSTP},
	    {"WINCH", SIGWINCH},
	    {"ALRM", SIGALRM},
	    {"PIPE", SIGPIPE},
	    {"ABRT", SIGABRT},
	};
	uint32_t n;
	size_t i;

	if (parse_u32(s, &n) == 0 && n > 0 && n < 65)
		return (int)n;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		if (strcasecmp(s, sigs[i].name) == 0)
			return sigs[i].num;
	return -1;
}

static uint32_t
ctl_parse_u32_arg(const char *cmd, const char *what, const char *s)
{
	uint32_t v;

	if (parse_u32(s, &v) != 0)
		ctl_usage_error("%s: %s: not a number: %s", cmd, what, s);
	return v;
}

/* {"id": ID, "exec_id": E} */
static json_t *
ctl_id_payload(const char *id, const char *exec_id)
{
	return json_pack("{s:s,s:s}", "id", id, "exec_id", exec_id != NULL ? exec_id : "");
}

/* Run a Task method; --json prints the payload, else human(resp) when given. */
static int
ctl_simple(struct ctl *ctl, const char *method, json_t *payload, int timeout_ms,
    void (*human)(json_t *resp, json_t *req))
{
	cleanup_json json_t *resp = NULL;
	cleanup_json json_t *req = payload;

	if (ctl_task(ctl, method, json_incref(req), timeout_ms, &resp) != 0)
		return CTL_EXIT_FAIL;
	if (ctl->json)
		ctl_print_json(resp);
	else if (human != NULL)
		human(resp, req);
	return CTL_EXIT_OK;
}

/* "c1" or "c1/e1" for human lines. */
static void
ctl_print_who(json_t *req)
{
	const char *exec_id = ctl_str(req, "exec_id");

	printf("%s%s%s", ctl_str(req, "id"), exec_id[0] != '\0' ? "/" : "", exec_id);
}

static void
ctl_human_pid(json_t *resp, json_t *req)
{
	ctl_print_who(req);
	printf("  pid %lld\n", (long long)ctl_int(resp, "pid"));
}

/* ---- commands ---- */

static int
ctl_cmd_create(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {
	    OPT_BUNDLE, OPT_STDIN, OPT_STDOUT, OPT_STDERR, OPT_TERMINAL, OPT_ROOTFS_BLOCK, 0};
	cleanup_free char *bundle = NULL, *in = NULL, *out = NULL, *err = NULL, *img = NULL;
	struct ctl_args a;
	json_t *rootfs = json_array();

	ctl_parse("create", argc, argv, allowed, 1, 1, &a);
	if (a.bundle == NULL)
		ctl_usage_error("create: --bundle DIR is required");
	bundle = ctl_abspath(a.bundle);
	in = ctl_abspath(a.stdin_path != NULL ? a.stdin_path : "");
	out = ctl_abspath(a.stdout_path != NULL ? a.stdout_path : "");
	err = ctl_abspath(a.stderr_path != NULL ? a.stderr_path : "");
	if (a.rootfs_block != NULL) {
		img = ctl_abspath(a.rootfs_block);
		json_array_append_new(rootfs, json_pack("{s:s,s:s,s:s,s:[]}", "type", "block",
						  "source", img, "target", "", "options"));
	}
	return ctl_simple(ctl, "Create",
	    json_pack("{s:s,s:s,s:o,s:b,s:s,s:s,s:s}", "id", a.pos[0], "bundle", bundle, "rootfs",
		rootfs, "terminal", a.terminal, "stdin", in, "stdout", out, "stderr", err),
	    ctl->timeout_ms, ctl_human_pid);
}

static int
ctl_cmd_start(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, 0};
	struct ctl_args a;

	ctl_parse("start", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(
	    ctl, "Start", ctl_id_payload(a.pos[0], a.exec_id), ctl->timeout_ms, ctl_human_pid);
}

static int
ctl_cmd_exec(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {
	    OPT_STDIN, OPT_STDOUT, OPT_STDERR, OPT_TERMINAL, OPT_ENV, OPT_CWD, 0};
	cleanup_free char *in = NULL, *out = NULL, *err = NULL;
	struct ctl_args a;
	json_t *spec;

	ctl_parse("exec", argc, argv, allowed, 3, -1, &a);
	spec = ctl_process_spec(a.pos + 2, a.npos - 2, a.terminal);
	if (a.env != NULL) {
		json_array_extend(json_object_get(spec, "env"), a.env);
		json_decref(a.env);
	}
	if (a.cwd != NULL)
		json_object_set_new(spec, "cwd", json_string(a.cwd));
	in = ctl_abspath(a.stdin_path != NULL ? a.stdin_path : "");
	out = ctl_abspath(a.stdout_path != NULL ? a.stdout_path : "");
	err = ctl_abspath(a.stderr_path != NULL ? a.stderr_path : "");
	return ctl_simple(ctl, "Exec",
	    json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:o}", "id", a.pos[0], "exec_id", a.pos[1],
		"terminal", a.terminal, "stdin", in, "stdout", out, "stderr", err, "spec", spec),
	    ctl->timeout_ms, NULL);
}

static void
ctl_human_state(json_t *resp, json_t *req)
{
	const char *status = ctl_str(resp, "status");

	ctl_print_who(req);
	printf("  %s  pid %lld", status, (long long)ctl_int(resp, "pid"));
	if (strcmp(status, "STOPPED") == 0)
		printf("  exit %lld  at %s", (long long)ctl_int(resp, "exit_status"),
		    ctl_str(resp, "exited_at"));
	putchar('\n');
}

static int
ctl_cmd_state(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, 0};
	struct ctl_args a;

	ctl_parse("state", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(
	    ctl, "State", ctl_id_payload(a.pos[0], a.exec_id), ctl->timeout_ms, ctl_human_state);
}

static void
ctl_human_ps(json_t *resp, json_t *req)
{
	json_t *p;
	size_t i;

	(void)req;
	puts("PID");
	json_array_foreach (json_object_get(resp, "processes"), i, p)
		printf("%lld\n", (long long)ctl_int(p, "pid"));
}

static int
ctl_cmd_ps(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	struct ctl_args a;

	ctl_parse("ps", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(
	    ctl, "Pids", json_pack("{s:s}", "id", a.pos[0]), ctl->timeout_ms, ctl_human_ps);
}

static int
ctl_cmd_kill(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, OPT_SIGNAL, OPT_ALL, 0};
	struct ctl_args a;
	int sig = SIGTERM;

	ctl_parse("kill", argc, argv, allowed, 1, 1, &a);
	if (a.signal != NULL && (sig = ctl_parse_signal(a.signal)) < 0)
		ctl_usage_error("kill: unknown signal %s", a.signal);
	return ctl_simple(ctl, "Kill",
	    json_pack("{s:s,s:s,s:i,s:b}", "id", a.pos[0], "exec_id",
		a.exec_id != NULL ? a.exec_id : "", "signal", sig, "all", a.all),
	    ctl->timeout_ms, NULL);
}

static void
ctl_human_wait(json_t *resp, json_t *req)
{
	ctl_print_who(req);
	printf("  exited %lld  at %s\n", (long long)ctl_int(resp, "exit_status"),
	    ctl_str(resp, "exited_at"));
}

static int
ctl_cmd_wait(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, 0};
	struct ctl_args a;

	ctl_parse("wait", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(ctl, "Wait", ctl_id_payload(a.pos[0], a.exec_id), 0, ctl_human_wait);
}

static int
ctl_cmd_pause(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	const char *method = strcmp(argv[0], "pause") == 0 ? "Pause" : "Resume";
	struct ctl_args a;

	ctl_parse(argv[0], argc, argv, allowed, 1, 1, &a);
	return ctl_simple(ctl, method, json_pack("{s:s}", "id", a.pos[0]), ctl->timeout_ms, NULL);
}

static int
ctl_cmd_update(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	struct ctl_args a;
	json_error_t jerr;
	json_t *res;

	ctl_parse("update", argc, argv, allowed, 2, 2, &a);
	res = json_loads(a.pos[1], 0, &jerr);
	if (!json_is_object(res))
		ctl_usage_error(
		    "update: RESOURCES_JSON: %s", res == NULL ? jerr.text : "expected an object");
	return ctl_simple(ctl, "Update",
	    json_pack("{s:s,s:o,s:{}}", "id", a.pos[0], "resources", res, "annotations"),
	    ctl->timeout_ms, NULL);
}

static void
ctl_human_stats(json_t *resp, json_t *req)
{
	char *s = json_dumps(json_object_get(resp, "stats"), JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	(void)req;
	if (s != NULL)
		puts(s);
	free(s);
}

static int
ctl_cmd_stats(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	struct ctl_args a;

	ctl_parse("stats", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(
	    ctl, "Stats", json_pack("{s:s}", "id", a.pos[0]), ctl->timeout_ms, ctl_human_stats);
}

static int
ctl_cmd_close_stdin(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, 0};
	struct ctl_args a;

	ctl_parse("close-stdin", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(ctl, "CloseIO",
	    json_pack("{s:s,s:s,s:b}", "id", a.pos[0], "exec_id",
		a.exec_id != NULL ? a.exec_id : "", "stdin", 1),
	    ctl->timeout_ms, NULL);
}

static int
ctl_cmd_resize(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, 0};
	struct ctl_args a;
	uint32_t w, h;

	ctl_parse("resize", argc, argv, allowed, 3, 3, &a);
	w = ctl_parse_u32_arg("resize", "WIDTH", a.pos[1]);
	h = ctl_parse_u32_arg("resize", "HEIGHT", a.pos[2]);
	return ctl_simple(ctl, "ResizePty",
	    json_pack("{s:s,s:s,s:I,s:I}", "id", a.pos[0], "exec_id",
		a.exec_id != NULL ? a.exec_id : "", "width", (json_int_t)w, "height",
		(json_int_t)h),
	    ctl->timeout_ms, NULL);
}

static void
ctl_human_delete(json_t *resp, json_t *req)
{
	ctl_print_who(req);
	printf("  pid %lld  exit %lld  at %s\n", (long long)ctl_int(resp, "pid"),
	    (long long)ctl_int(resp, "exit_status"), ctl_str(resp, "exited_at"));
}

static int
ctl_cmd_delete(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_EXEC_ID, 0};
	struct ctl_args a;

	ctl_parse("delete", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(
	    ctl, "Delete", ctl_id_payload(a.pos[0], a.exec_id), ctl->timeout_ms, ctl_human_delete);
}

static void
ctl_human_connect(json_t *resp, json_t *req)
{
	(void)req;
	printf("shim pid %lld  task pid %lld  version %s\n", (long long)ctl_int(resp, "shim_pid"),
	    (long long)ctl_int(resp, "task_pid"), ctl_str(resp, "version"));
}

static int
ctl_cmd_connect(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	struct ctl_args a;

	ctl_parse("connect", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(
	    ctl, "Connect", json_pack("{s:s}", "id", a.pos[0]), ctl->timeout_ms, ctl_human_connect);
}

static int
ctl_cmd_shutdown(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {OPT_NOW, 0};
	struct ctl_args a;

	ctl_parse("shutdown", argc, argv, allowed, 1, 1, &a);
	return ctl_simple(ctl, "Shutdown", json_pack("{s:s,s:b}", "id", a.pos[0], "now", a.now),
	    ctl->timeout_ms, NULL);
}

/* `events` state: the reader thread prints, the main thread waits for the end. */
static pthread_mutex_t ctl_events_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ctl_events_cond = PTHREAD_COND_INITIALIZER;
static bool ctl_events_ended; /* guarded by ctl_events_lock */

/* One event per line: "TIMESTAMP TOPIC {event}", or the raw frame with --json. */
static void
ctl_events_on_data(void *arg, const uint8_t *buf, size_t len)
{
	struct ctl *ctl = arg;
	struct msg_event ev;
	struct status st;
	char *s;

	if (buf == NULL) {
		pthread_mutex_lock(&ctl_events_lock);
		ctl_events_ended = true;
		pthread_cond_signal(&ctl_events_cond);
		pthread_mutex_unlock(&ctl_events_lock);
		return;
	}
	if (ctl->json) {
		printf("%.*s\n", (int)len, (const char *)buf);
	} else if (msg_event_decode(buf, len, &ev, &st) == 0) {
		s = json_dumps(ev.event, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s %s %s\n", ev.timestamp != NULL ? ev.timestamp : "-", ev.topic,
		    s != NULL ? s : "{}");
		free(s);
		msg_event_clear(&ev);
	} else {
		fprintf(stderr, "vmshimctl: Subscribe: bad event: %s\n", st.msg);
	}
	fflush(stdout);
}

static int
ctl_cmd_events(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	struct ctl_args a;
	struct status st;

	ctl_parse("events", argc, argv, allowed, 0, 0, &a);
	if (rpc_client_subscribe(ctl_client(ctl), PROTOCOL_EVENTS_SERVICE, "Subscribe", NULL,
		ctl->timeout_ms, ctl_events_on_data, ctl, &st) != 0) {
		fprintf(
		    stderr, "vmshimctl: Subscribe: %s: %s\n", status_code_name(st.code), st.msg);
		return CTL_EXIT_FAIL;
	}
	pthread_mutex_lock(&ctl_events_lock);
	while (!ctl_events_ended)
		pthread_cond_wait(&ctl_events_cond, &ctl_events_lock);
	pthread_mutex_unlock(&ctl_events_lock);
	fprintf(stderr, "vmshimctl: Subscribe: %s: event stream ended\n",
	    status_code_name(ST_UNAVAILABLE));
	return CTL_EXIT_FAIL;
}

static int
ctl_cmd_call(struct ctl *ctl, int argc, char **argv)
{
	static const int allowed[] = {0};
	cleanup_json json_t *payload = NULL;
	cleanup_json json_t *resp = NULL;
	struct ctl_args a;
	json_error_t jerr;
	struct status st;

	ctl_parse("call", argc, argv, allowed, 2, 3, &a);
	payload = json_loads(a.npos == 3 ? a.pos[2] : "{}", 0, &jerr);
	if (!json_is_object(payload))
		ctl_usage_error(
		    "call: JSON: %s", payload == NULL ? jerr.text : "expected an object");
	if (rpc_client_call(
		ctl_client(ctl), a.pos[0], a.pos[1], payload, ctl->timeout_ms, &resp, &st) != 0) {
		fprintf(
		    stderr, "vmshimctl: %s: %s: %s\n", a.pos[1], status_code_name(st.code), st.msg);
		return CTL_EXIT_FAIL;
	}
	ctl_print_json(resp);
	return CTL_EXIT_OK;
}

static const struct ctl_command {
	const char *name;
	int (*fn)(struct ctl *ctl, int argc, char **argv);
} ctl_commands[] = {
    {"create", ctl_cmd_create},
    {"start", ctl_cmd_start},
    {"exec", ctl_cmd_exec},
    {"state", ctl_cmd_state},
    {"ps", ctl_cmd_ps},
    {"kill", ctl_cmd_kill},
    {"wait", ctl_cmd_wait},
    {"pause", ctl_cmd_pause},
    {"resume", ctl_cmd_pause},
    {"update", ctl_cmd_update},
    {"stats", ctl_cmd_stats},
    {"close-stdin", ctl_cmd_close_stdin},
    {"resize", ctl_cmd_resize},
    {"delete", ctl_cmd_delete},
    {"connect", ctl_cmd_connect},
    {"shutdown", ctl_cmd_shutdown},
    {"events", ctl_cmd_events},
    {"call", ctl_cmd_call},
    {"run", ctl_run},
};

/* Parse an address: unix:///PATH or any transport endpoint. 0 or -1 with *st. */
static int
ctl_parse_address(const char *address, struct endpoint *ep, struct status *st)
{
	cleanup_free char *s = NULL;

	if (strncmp(address, "unix://", 7) == 0)
		xasprintf(&s, "unix:%s", address + 7);
	else
		s = xstrdup(address);
	return endpoint_parse(s, ep, st);
}

/* The client, connected on first use (after the command's arguments were checked). */
struct rpc_client *
ctl_client(struct ctl *ctl)
{
	struct endpoint ep;
	struct status st;
	int fd;

	if (ctl->client != NULL)
		return ctl->client;
	fd = -1;
	if (ctl_parse_address(ctl->address, &ep, &st) == 0)
		fd = transport_connect(&ep, 0, &st);
	if (fd < 0) {
		fprintf(stderr, "vmshimctl: %s: %s: %s\n", ctl->address, status_code_name(st.code),
		    st.msg);
		exit(CTL_EXIT_FAIL);
	}
	ctl->client = rpc_client_new(fd, CTL_MAX_MESSAGE);
	if (rpc_client_start_reader(ctl->client, &st) != 0) {
		fprintf(stderr, "vmshimctl: %s: %s: %s\n", ctl->address, status_code_name(st.code),
		    st.msg);
		exit(CTL_EXIT_FAIL);
	}
	return ctl->client;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"address", required_argument, NULL, 'a'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {NULL, NULL, false, CTL_DEFAULT_TIMEOUT_MS};
	const struct ctl_command *cmd = NULL;
	const char *address = getenv("VMSHIM_ADDRESS");
	struct endpoint ep;
	struct status st;
	uint32_t timeout;
	size_t i;
	int ch, rc;

	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+a:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			address = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'T':
			if (parse_u32(optarg, &timeout) != 0 || timeout > INT32_MAX)
				ctl_usage_error(
				    "--timeout: not a number of milliseconds: %s", optarg);
			ctl.timeout_ms = (int)timeout;
			break;
		case 'h':
			fputs(ctl_usage_text, stdout);
			return CTL_EXIT_OK;
		default:
			ctl_usage_error("unknown or misused option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		ctl_usage_error("no command");
	if (strcmp(argv[optind], "help") == 0) {
		fputs(ctl_usage_text, stdout);
		return CTL_EXIT_OK;
	}
	for (i = 0; i < ARRAY_SIZE(ctl_commands); i++)
		if (strcmp(argv[optind], ctl_commands[i].name) == 0)
			cmd = &ctl_commands[i];
	if (cmd == NULL)
		ctl_usage_error("unknown command %s", argv[optind]);
	if (address == NULL || *address == '\0')
		ctl_usage_error("no address: use -a ADDRESS or set VMSHIM_ADDRESS");
	if (ctl_parse_address(address, &ep, &st) != 0)
		ctl_usage_error("%s", st.msg);

	ctl.address = address;
	rc = cmd->fn(&ctl, argc - optind, argv + optind);
	rpc_client_free(ctl.client);
	return rc;
}
