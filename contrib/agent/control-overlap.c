/*
 * control-overlap.c: the bring-up overlap switch, a test aid (VMSHIM_TEST_BRINGUP_OVERLAP=1).
 *
 * It tracks, per container, the span from MountDisk (or CreateContainer) to the end of
 * CreateContainer; a span opening while another is open is logged and drops every control
 * connection (through the callback control_init() registers), loudly, so a test sees that the
 * shim let two bring-ups overlap. Runs on the loop thread; owns the list of open spans.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "control.h"
#include "log.h"
#include "util.h"

struct control_span {
	LIST_ENTRY(control_span) entry;
	char *id;
};

static LIST_HEAD(, control_span) control_spans = LIST_HEAD_INITIALIZER(control_spans);
static void (*control_drop_all)(void);

void
control_bringup_init(void (*drop_all)(void))
{
	control_drop_all = drop_all;
}

void
control_bringup_begin(const char *id)
{
	struct control_span *s;

	if (!agent.test_bringup_overlap)
		return;
	LIST_FOREACH (s, &control_spans, entry) {
		if (strcmp(s->id, id) == 0)
			return;
	}
	if (!LIST_EMPTY(&control_spans)) {
		log_error_id(id, NULL,
		    "bring-up overlap detected: %.*s starts while %.*s is in progress: dropping "
		    "every control connection",
		    LOG_STR_MAX, id, LOG_STR_MAX, LIST_FIRST(&control_spans)->id);
		control_drop_all();
	}
	s = xcalloc(1, sizeof *s);
	s->id = xstrdup(id);
	LIST_INSERT_HEAD(&control_spans, s, entry);
}

void
control_bringup_end(const char *id)
{
	struct control_span *s;

	LIST_FOREACH (s, &control_spans, entry) {
		if (strcmp(s->id, id) == 0) {
			LIST_REMOVE(s, entry);
			free(s->id);
			free(s);
			return;
		}
	}
}

void
control_bringup_clear(void)
{
	struct control_span *s;

	while ((s = LIST_FIRST(&control_spans)) != NULL) {
		LIST_REMOVE(s, entry);
		free(s->id);
		free(s);
	}
}
