/* uring_compat.h -- what Debian 12's liburing 2.3 lacks, for a 6.x kernel.
 *
 * ringcast builds against liburing 2.3 (the distribution's) while running on
 * much newer kernels. The few newer pieces the io_uring backend needs are
 * provided here: constants copied by value from the upstream uapi header
 * (each behind #ifndef, so a newer liburing simply wins) and a by-hand
 * version of io_uring_setup_buf_ring(), which only arrived in liburing 2.4.
 * Never include <linux/io_uring.h> next to <liburing.h>: both use the
 * include guard LINUX_IO_URING_H, and whichever comes first wins.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef RC_URING_COMPAT_H
#define RC_URING_COMPAT_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3) /* 6.2 */
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31) /* 6.2, in the notification's res */
#endif
#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4) /* 6.10 */
#endif
#ifndef IORING_SEND_VECTORIZED
#define IORING_SEND_VECTORIZED (1U << 5) /* 6.17: SEND with addr = iovec array */
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4) /* 6.12 */
#endif

/* io_uring_buf_reg.pad is the newer "flags" field. */
#define COMPAT_IOU_PBUF_RING_MMAP 1 /* 6.4 */
#define COMPAT_IOU_PBUF_RING_INC  2 /* 6.12 */

/* A provided-buffer ring set up by hand: liburing 2.3 has
 * io_uring_register_buf_ring() but not io_uring_setup_buf_ring(). entries
 * must be a power of two (at most 32768). On success *br points at a
 * page-aligned, zero-tailed ring registered as group bgid; release it with
 * compat_free_buf_ring(). Returns 0 or -errno. */
static inline int compat_setup_buf_ring(struct io_uring *ring, unsigned entries, uint16_t bgid,
                                        struct io_uring_buf_ring **br)
{
    struct io_uring_buf_reg reg;
    size_t len = entries * sizeof(struct io_uring_buf);
    void *p;
    int ret;

    if (!entries || (entries & (entries - 1)) || entries > 32768)
        return -EINVAL;
    /* mmap gives the page alignment the kernel insists on. */
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)p;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        munmap(p, len);
        return ret;
    }
    *br = p;
    io_uring_buf_ring_init(*br);
    return 0;
}

/* Unregisters group bgid and unmaps its ring. NULL br is a no-op. */
static inline void compat_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
                                        unsigned entries, uint16_t bgid)
{
    if (!br)
        return;
    io_uring_unregister_buf_ring(ring, bgid);
    munmap(br, entries * sizeof(struct io_uring_buf));
}

#endif
