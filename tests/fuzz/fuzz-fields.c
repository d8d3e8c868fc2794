/*
 * fuzz-fields.c: the typed-accessor walk shared by the JSON targets (fuzz.h).
 *
 * For every field of a table it calls the msg_get_* accessor a method handler would call
 * and checks the answer against an oracle computed from the JSON itself: a field that is
 * absent or null is an error only when required and otherwise leaves the output untouched;
 * a present field of the right type comes back as exactly that value; anything else is -1
 * with INVALID_ARGUMENT and a message that starts with `where`, as the handlers forward it to
 * the client. Nested tables (rootfs mounts, the OCI process, its user) recurse with "where"
 * extended the way the handlers name them ("payload.rootfs[2]"). Allocates only the
 * temporary "where" strings; runs on the fuzzing thread.
 */
#include "config.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"

/* Check a failed accessor's status: INVALID_ARGUMENT naming where. */
static void
fuzz_field_failed(int r, const struct status *st, const char *where, const char *key)
{
	fuzz_check(r == -1, "%s.%s: accessor returned %d", where, key, r);
	fuzz_check(st->code == ST_INVALID_ARGUMENT, "%s.%s: code %d", where, key, st->code);
	fuzz_check(strncmp(st->msg, where, strlen(where)) == 0, "%s.%s: message \"%s\"", where, key,
	    st->msg);
}

/* Is v of the accessor type t? (for FF_U32 also in range) */
static bool
fuzz_field_type_ok(json_t *v, enum fuzz_field_type t)
{
	json_int_t n;

	switch (t) {
	case FF_STRING:
		return json_is_string(v);
	case FF_BOOL:
		return json_is_boolean(v);
	case FF_U32:
		if (!json_is_integer(v))
			return false;
		n = json_integer_value(v);
		return n >= 0 && n <= (json_int_t)UINT32_MAX;
	case FF_I64:
		return json_is_integer(v);
	case FF_OBJECT:
	case FF_STRMAP:
	case FF_TABLE:
		return json_is_object(v);
	default:
		return json_is_array(v);
	}
}

/* Call the accessor for f on obj; 0/-1 as it returned, the value (if any) in *val. */
static int
fuzz_field_get(
    json_t *obj, const char *where, const struct fuzz_field *f, json_t **val, struct status *st)
{
	static const char sentinel[] = "untouched";
	const char *s = sentinel;
	uint32_t u = 0xdeadbeef;
	int64_t i = INT64_MIN + 7;
	json_t *v = NULL, *raw;
	bool b = true, b2 = false;
	int r, r2;

	raw = json_is_object(obj) ? json_object_get(obj, f->key) : NULL;
	switch (f->type) {
	case FF_STRING:
		if ((r = msg_get_string(obj, where, f->key, f->required, &s, st)) == 0)
			fuzz_check(s == sentinel ? !f->required : s == json_string_value(raw),
			    "%s.%s: wrong string", where, f->key);
		return r;
	case FF_BOOL:
		/* Two calls with opposite defaults tell "untouched" from "set". */
		r = msg_get_bool(obj, where, f->key, f->required, &b, st);
		r2 = msg_get_bool(obj, where, f->key, f->required, &b2, st);
		fuzz_check(r == r2, "%s.%s: bool accessor not repeatable", where, f->key);
		if (r == 0 && b != b2)
			fuzz_check(!f->required && (raw == NULL || json_is_null(raw)),
			    "%s.%s: bool left untouched", where, f->key);
		else if (r == 0)
			fuzz_check(b == json_is_true(raw), "%s.%s: wrong bool", where, f->key);
		return r;
	case FF_U32:
		if ((r = msg_get_u32(obj, where, f->key, f->required, &u, st)) == 0 &&
		    json_is_integer(raw))
			fuzz_check(u == (uint32_t)json_integer_value(raw), "%s.%s: wrong u32",
			    where, f->key);
		return r;
	case FF_I64:
		if ((r = msg_get_i64(obj, where, f->key, f->required, &i, st)) == 0 &&
		    json_is_integer(raw))
			fuzz_check(i == (int64_t)json_integer_value(raw), "%s.%s: wrong i64", where,
			    f->key);
		return r;
	case FF_OBJECT:
	case FF_STRMAP:
	case FF_TABLE:
		r = msg_get_object(obj, where, f->key, f->required, &v, st);
		break;
	default:
		r = msg_get_array(obj, where, f->key, f->required, &v, st);
		break;
	}
	if (r == 0)
		fuzz_check(v == NULL || v == raw, "%s.%s: wrong value", where, f->key);
	*val = v;
	return r;
}

/*
 * Read the elements of an array field, or the values of an FF_STRMAP object, as a handler
 * does (a non-string reads as NULL, never a crash); recurse into FF_TABLES elements.
 */
static void
fuzz_field_elems(json_t *v, const char *where, const struct fuzz_field *f)
{
	void *it;
	json_t *e;
	char *sub;
	size_t i;

	if (f->type == FF_STRMAP) {
		for (it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it))
			(void)json_string_value(json_object_iter_value(it));
		return;
	}
	for (i = 0; i < json_array_size(v); i++) {
		e = json_array_get(v, i);
		if (f->type == FF_STRINGS) {
			(void)json_string_value(e);
		} else if (f->type == FF_U32S) {
			(void)fuzz_field_type_ok(e, FF_U32);
		} else if (f->type == FF_TABLES) {
			xasprintf(&sub, "%s.%s[%zu]", where, f->key, i);
			fuzz_fields_walk(e, sub, f->sub);
			free(sub);
		}
	}
}

void
fuzz_fields_walk(json_t *obj, const char *where, const struct fuzz_field *table)
{
	const struct fuzz_field *f;
	struct status st;
	json_t *v, *raw;
	bool present;
	char *sub;
	int r;

	for (f = table; f->key != NULL; f++) {
		status_clear(&st);
		v = NULL;
		raw = json_is_object(obj) ? json_object_get(obj, f->key) : NULL;
		present = raw != NULL && !json_is_null(raw);
		r = fuzz_field_get(obj, where, f, &v, &st);
		if (obj != NULL && !json_is_object(obj))
			fuzz_field_failed(r, &st, where, f->key);
		else if (!present && f->required)
			fuzz_field_failed(r, &st, where, f->key);
		else if (present && !fuzz_field_type_ok(raw, f->type))
			fuzz_field_failed(r, &st, where, f->key);
		else
			fuzz_check(r == 0, "%s.%s: accessor failed: %s", where, f->key, st.msg);
		if (r < 0 || v == NULL)
			continue;
		if (f->type == FF_TABLE) {
			xasprintf(&sub, "%s.%s", where, f->key);
			fuzz_fields_walk(v, sub, f->sub);
			free(sub);
		} else {
			fuzz_field_elems(v, where, f);
		}
	}
}
