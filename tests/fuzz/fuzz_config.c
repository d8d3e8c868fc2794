/*
 * fuzz_config.c: libFuzzer target for the shim's configuration parser (shim/config.c).
 *
 * The first byte picks what the rest is: a config document (config_parse, then, when it was
 * accepted, config_endpoints as start-up does), or an OCI config.json's annotations object
 * (config_apply_annotations over the defaults). Every failure must be INVALID_ARGUMENT with a
 * message naming its source (docs/CONTRACT.md 2, 3: one line naming the file, the key and the
 * problem); every success must leave values inside their documented ranges. The config is freed
 * after each input, so leaks of half-applied values show up under -detect_leaks.
 */
#include "config.h"

#include <jansson.h>
#include <string.h>

#include "fuzz.h"
#include "shim.h"

/* The invariants of an accepted configuration. */
static void
config_check(const struct shim_config *cfg)
{
	size_t i;

	fuzz_check(cfg->workers >= 1, "workers %u", cfg->workers);
	fuzz_check(cfg->max_message_bytes >= 1, "max_message_bytes %u", cfg->max_message_bytes);
	fuzz_check(cfg->n_hotplug_ports == 0 || cfg->hotplug_ports != NULL, "ports list");
	for (i = 0; i < cfg->n_hotplug_ports; i++)
		fuzz_check(cfg->hotplug_ports[i] != NULL, "port %zu is NULL", i);
	fuzz_check(cfg->n_allowed_uids == 0 || cfg->allowed_uids != NULL, "uid list");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct shim_config cfg;
	struct status st;
	json_error_t jerr;
	json_t *ann;

	if (size == 0)
		return 0;
	config_defaults(&cfg);
	status_clear(&st);
	if (data[0] & 1) {
		ann = json_loadb((const char *)data + 1, size - 1, 0, &jerr);
		if (json_is_object(ann)) {
			if (config_apply_annotations(&cfg, ann, &st) < 0)
				fuzz_check(st.code == ST_INVALID_ARGUMENT &&
					       strstr(st.msg, "io.vmshim.") != NULL,
				    "annotation failure %d \"%s\"", st.code, st.msg);
			else
				config_check(&cfg);
		}
		json_decref(ann);
	} else if (config_parse(&cfg, (const char *)data + 1, size - 1, "config fuzz", &st) < 0) {
		fuzz_check(
		    st.code == ST_INVALID_ARGUMENT && strncmp(st.msg, "config fuzz", 11) == 0,
		    "config failure %d \"%s\"", st.code, st.msg);
	} else {
		config_check(&cfg);
		status_clear(&st);
		if (config_endpoints(&cfg, "config fuzz", &st) < 0)
			fuzz_check(st.code == ST_INVALID_ARGUMENT, "endpoints failure %d \"%s\"",
			    st.code, st.msg);
	}
	config_free(&cfg);
	return 0;
}
