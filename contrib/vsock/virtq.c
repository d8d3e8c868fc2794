/*
 * virtq.c: guest memory translation and the device side of split virtqueues.
 *
 * Guest memory is the table of regions QEMU sent with SET_MEM_TABLE (vhost-user.c maps them).
 * Ring addresses arrive as QEMU's virtual addresses, buffer addresses in descriptors as guest
 * physical ones; both are translated here, with the whole range checked to lie in mapped
 * memory, so nothing the guest writes can make us touch memory outside its own.
 *
 * Everything in guest memory is read as untrusted and may change under us: each field is read
 * once into a local and checked before use. A chain is followed for at most min(queue size,
 * VIRTQ_MAX_SEGS) descriptors, indirect descriptors are refused (we do not offer them), and a
 * chain whose descriptors have the wrong direction or point outside memory is handed back
 * unused. An avail index that runs more than a queue ahead of us means the ring is corrupt:
 * the queue is marked broken and left alone until the driver sets it up again.
 *
 * Ordering (the driver runs on other CPUs): the avail index is loaded with acquire semantics
 * before the ring entry and descriptors it publishes are read; used entries are written
 * before the used index is stored with release semantics; and a full fence separates that
 * store from reading the driver's no-interrupt flag, so a driver that re-enables interrupts
 * and then checks the used index cannot miss our notification.
 *
 * Runs on the loop thread only; owns nothing but what gmem_clear unmaps.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "vsock.h"

/*
 * The fences below order our stores to guest memory against the guest's CPUs, which no
 * sanitizer can see; gcc's ThreadSanitizer warns that it does not model them. This program is
 * single-threaded, so there is nothing for TSan to check here.
 */
#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wtsan"
#endif

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

uint8_t *
gmem_gpa(const struct gmem *m, uint64_t gpa, uint64_t *len)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct gmem_region *r = &m->r[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size) {
			uint64_t off = gpa - r->gpa;
			if (*len > r->size - off)
				*len = r->size - off;
			return r->host + off;
		}
	}
	return NULL;
}

uint8_t *
gmem_uva(const struct gmem *m, uint64_t uva, uint64_t len)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct gmem_region *r = &m->r[i];
		if (uva >= r->uva && uva - r->uva < r->size && len <= r->size - (uva - r->uva))
			return r->host + (uva - r->uva);
	}
	return NULL;
}

void
gmem_clear(struct gmem *m)
{
	for (unsigned i = 0; i < m->n; i++) {
		if (m->r[i].map != NULL)
			munmap(m->r[i].map, m->r[i].map_len);
	}
	memset(m, 0, sizeof *m);
}

int
virtq_map(struct virtq *q, const struct gmem *m)
{
	uint64_t n = q->num;

	q->desc = NULL;
	q->avail = NULL;
	q->used = NULL;
	if (n == 0 || q->desc_uva == 0)
		return 0;
	q->desc = (struct virtq_desc *)gmem_uva(m, q->desc_uva, 16 * n);
	q->avail = (struct virtq_avail *)gmem_uva(m, q->avail_uva, 6 + 2 * n);
	q->used = (struct virtq_used *)gmem_uva(m, q->used_uva, 6 + 8 * n);
	/* Alignment the split ring requires; misaligned rings would make our loads tear. */
	if (q->desc == NULL || q->avail == NULL || q->used == NULL ||
	    ((uintptr_t)q->desc & 15) != 0 || ((uintptr_t)q->avail & 1) != 0 ||
	    ((uintptr_t)q->used & 3) != 0) {
		q->desc = NULL;
		q->avail = NULL;
		q->used = NULL;
		return -1;
	}
	return 0;
}

bool
virtq_ready(const struct virtq *q)
{
	return q->num != 0 && q->desc != NULL && q->enabled && !q->broken;
}

/* Load a guest-written u16 once, with the ordering asked for. */
static uint16_t
virtq_load16(const uint16_t *p, int order)
{
	return le16toh(__atomic_load_n(p, order));
}

/* Add [base, base+len) of guest memory at gpa to the chain, split at region ends. */
static int
virtq_chain_add(struct virtq_chain *c, const struct gmem *m, uint64_t gpa, uint32_t len)
{
	uint64_t left = len;

	if (gpa + left < gpa)
		return -1;
	while (left > 0) {
		uint64_t piece = left;
		uint8_t *p = gmem_gpa(m, gpa, &piece);
		if (p == NULL || c->nseg == VIRTQ_MAX_SEGS)
			return -1;
		c->seg[c->nseg].base = p;
		c->seg[c->nseg].len = (size_t)piece;
		c->nseg++;
		c->len += (size_t)piece;
		gpa += piece;
		left -= piece;
	}
	return 0;
}

enum virtq_pop_result
virtq_pop(struct virtq *q, const struct gmem *m, bool writable, struct virtq_chain *c)
{
	uint16_t avail_idx, idx, flags;
	unsigned limit, i;

	c->nseg = 0;
	c->len = 0;
	if (!virtq_ready(q))
		return VIRTQ_EMPTY;
	avail_idx = virtq_load16(&q->avail->idx, __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail)
		return VIRTQ_EMPTY;
	if ((uint16_t)(avail_idx - q->last_avail) > q->num) {
		log_error("queue corrupt: avail index %u is more than %u ahead of %u", avail_idx,
		    q->num, q->last_avail);
		q->broken = true;
		return VIRTQ_BROKEN;
	}
	/* The acquire load above orders this read and the descriptor reads after it. */
	idx = virtq_load16(&q->avail->ring[q->last_avail & (q->num - 1)], __ATOMIC_RELAXED);
	q->last_avail++;
	if (idx >= q->num) {
		log_error("queue corrupt: avail head %u out of a queue of %u", idx, q->num);
		q->broken = true;
		return VIRTQ_BROKEN;
	}
	c->head = idx;

	limit = q->num < VIRTQ_MAX_SEGS ? q->num : VIRTQ_MAX_SEGS;
	for (i = 0; i < limit; i++) {
		struct virtq_desc d;

		memcpy(&d, (const void *)&q->desc[idx], sizeof d);
		flags = le16toh(d.flags);
		if ((flags & VIRTQ_DESC_F_INDIRECT) != 0)
			return VIRTQ_BAD;
		if (((flags & VIRTQ_DESC_F_WRITE) != 0) != writable)
			return VIRTQ_BAD;
		if (virtq_chain_add(c, m, le64toh(d.addr), le32toh(d.len)) < 0)
			return VIRTQ_BAD;
		if ((flags & VIRTQ_DESC_F_NEXT) == 0)
			return VIRTQ_CHAIN;
		idx = le16toh(d.next);
		if (idx >= q->num)
			return VIRTQ_BAD;
	}
	return VIRTQ_BAD; /* too long, or a loop */
}

void
virtq_unpop(struct virtq *q)
{
	q->last_avail--;
}

void
virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	volatile struct virtq_used_elem *e = &q->used->ring[q->last_used & (q->num - 1)];

	e->id = htole32(head);
	e->len = htole32(len);
	q->last_used++;
	/* The entry must be visible before the index that publishes it. */
	__atomic_store_n(&q->used->idx, htole16(q->last_used), __ATOMIC_RELEASE);
	q->pushed++;
}

void
virtq_notify(struct virtq *q)
{
	uint64_t one = 1;

	if (q->pushed == 0)
		return;
	q->pushed = 0;
	/* Our used index store must be ordered before reading the driver's flag. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->avail == NULL ||
	    (virtq_load16(&q->avail->flags, __ATOMIC_RELAXED) & VIRTQ_AVAIL_F_NO_INTERRUPT) != 0)
		return;
	if (q->call_fd >= 0 && write(q->call_fd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("call eventfd: %s", strerror(errno));
}

size_t
virtq_chain_read(const struct virtq_chain *c, size_t off, void *dst, size_t len)
{
	uint8_t *out = dst;
	size_t done = 0;

	for (unsigned i = 0; i < c->nseg && done < len; i++) {
		size_t n;
		if (off >= c->seg[i].len) {
			off -= c->seg[i].len;
			continue;
		}
		n = c->seg[i].len - off;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, c->seg[i].base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t
virtq_chain_write(const struct virtq_chain *c, size_t off, const void *src, size_t len)
{
	const uint8_t *in = src;
	size_t done = 0;

	for (unsigned i = 0; i < c->nseg && done < len; i++) {
		size_t n;
		if (off >= c->seg[i].len) {
			off -= c->seg[i].len;
			continue;
		}
		n = c->seg[i].len - off;
		if (n > len - done)
			n = len - done;
		memcpy(c->seg[i].base + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}

int
virtq_chain_iov(const struct virtq_chain *c, size_t off, size_t len, struct iovec *iov, int max)
{
	int n = 0;

	for (unsigned i = 0; i < c->nseg && len > 0 && n < max; i++) {
		size_t take;
		if (off >= c->seg[i].len) {
			off -= c->seg[i].len;
			continue;
		}
		take = c->seg[i].len - off;
		if (take > len)
			take = len;
		iov[n].iov_base = c->seg[i].base + off;
		iov[n].iov_len = take;
		n++;
		len -= take;
		off = 0;
	}
	return n;
}
