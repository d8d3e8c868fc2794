/*
 * vm-lock.c: the per-VM bring-up lock (docs/CONTRACT.md 5.3: a confidential guest crashes when two
 * container bring-ups overlap).
 *
 * Concurrent container bring-up (device hot-add, guest mount, guest create) crashes
 * confidential guests, so with vm.confidential one mutex per VM is held across each
 * container's whole bring-up; ordinary VMs skip it and bring containers up concurrently.
 * Workers take it; the loop thread never does, so State, Wait, Kill, stdio and other
 * connections keep flowing while a bring-up holds it. This is the one lock in vmshim that is
 * held across blocking calls: it exists to serialize exactly those calls.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"
#include "vm.h"

struct vm_bringup {
	bool confidential;
	pthread_mutex_t mu; /* held across one container's bring-up when confidential */
};

struct vm_bringup *
vm_bringup_new(bool confidential)
{
	struct vm_bringup *b = xcalloc(1, sizeof *b);

	b->confidential = confidential;
	pthread_mutex_init(&b->mu, NULL);
	return b;
}

void
vm_bringup_free(struct vm_bringup *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int64_t
vm_bringup_begin(struct vm_bringup *b, const char *id)
{
	int64_t start, waited;

	if (!b->confidential)
		return 0;
	start = time_mono_ms();
	if (pthread_mutex_trylock(&b->mu) != 0) {
		/* Says (to an operator, and to tests) that this job runs and waits its turn. */
		log_debug_id(id, "", "bring-up lock busy: waiting");
		pthread_mutex_lock(&b->mu);
	}
	waited = time_mono_ms() - start;
	log_info_id(id, "", "bring-up lock taken after waiting %lld ms", (long long)waited);
	return waited;
}

void
vm_bringup_end(struct vm_bringup *b, const char *id)
{
	if (!b->confidential)
		return;
	pthread_mutex_unlock(&b->mu);
	log_debug_id(id, "", "bring-up lock released");
}
