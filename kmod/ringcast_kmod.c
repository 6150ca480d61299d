// SPDX-License-Identifier: GPL-2.0
/*
 * ringcast_kmod.c -- one copy of a tick's output, sent to many TCP sockets.
 *
 * A fan-out server writes the same frames to many clients. From user space
 * that is one send per client, and each send copies the frames into the
 * kernel again. This module takes a whole tick in one ioctl on /dev/ringcast
 * (include/ringcast_kmod.h is the contract): the frames once, a table of
 * slices of them, and for each target socket a run of slices. The frames are
 * copied into the kernel once, into pages of our own; then each socket is
 * sent its slices without blocking.
 *
 * Copy mode hands each socket kvecs over those pages (the socket layer still
 * copies into its skbs, but from kernel memory, with no per-socket
 * copy_from_user and no per-socket system call). Zero-copy mode
 * (RCK_F_ZEROCOPY) lets every socket's skbs take references on the same
 * pages: MSG_SPLICE_PAGES over bio_vecs from Linux 6.5, kernel_sendpage()
 * before. The pages are order-0 pages from the page allocator, never slab
 * memory, so sendpage_ok() holds; we drop our references when the call
 * ends and the skbs keep theirs until the data is acknowledged. Nothing
 * writes to the pages after the copy, so sharing them is safe.
 *
 * Everything that comes from user space is checked before it is used: the
 * sizes against the limits, every offset and length in 64 bits, the slice
 * runs against the slice table, every descriptor through sockfd_lookup() in
 * the caller's own file table, and the socket's type and state. Bad input
 * gives an errno, never a WARN: the only kernel warning left on this path
 * is the socket layer's own sendpage_ok() check, which our pages satisfy.
 */
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/in.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/overflow.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/version.h>
#include <net/sock.h>
#include <net/tcp_states.h>

#include "ringcast_kmod.h"

/*
 * Debian's 6.1 backports the MSG_SPLICE_PAGES flag (for
 * MSG_INTERNAL_SENDMSG_FLAGS) but not TCP's support for it, so the choice is
 * made on the version, not on the flag being defined.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
#define RCK_HAVE_SPLICE_PAGES 1
#else
#define RCK_HAVE_SPLICE_PAGES 0
#endif

/* Pieces of a target's data handed to the socket layer per call. */
#define RCK_VECS 16

/* The kernel copy of buf: order-0 pages, buf byte i at page i / PAGE_SIZE. */
struct rck_copy {
	struct page **pages;
	u32 npages;
	u32 len;
};

/* A run of bytes inside one page of the copy. */
struct rck_piece {
	struct page *page;
	u32 off;
	u32 len;
};

static void rck_copy_free(struct rck_copy *kc)
{
	u32 i;

	if (!kc->pages)
		return;
	/* put_page, not __free_page: skbs may still hold references. */
	for (i = 0; i < kc->npages; i++)
		if (kc->pages[i])
			put_page(kc->pages[i]);
	kvfree(kc->pages);
	kc->pages = NULL;
}

/* Copies len bytes at ubuf into fresh pages: 0, -ENOMEM or -EFAULT. */
static int rck_copy_in(struct rck_copy *kc, const void __user *ubuf, u32 len)
{
	u32 i;

	kc->len = len;
	kc->npages = DIV_ROUND_UP(len, PAGE_SIZE);
	kc->pages = NULL;
	if (!kc->npages)
		return 0;
	kc->pages =
		kvcalloc(kc->npages, sizeof(*kc->pages), GFP_KERNEL_ACCOUNT);
	if (!kc->pages)
		return -ENOMEM;
	for (i = 0; i < kc->npages; i++) {
		u32 off = i * PAGE_SIZE;
		u32 n = min_t(u32, len - off, PAGE_SIZE);

		kc->pages[i] = alloc_page(GFP_KERNEL_ACCOUNT);
		if (!kc->pages[i])
			return -ENOMEM;
		if (copy_from_user(page_address(kc->pages[i]), ubuf + off, n))
			return -EFAULT;
		cond_resched();
	}
	return 0;
}

/*
 * Checks a target's run of slices: inside the slice table, every slice
 * inside buf (in 64 bits, so off + len cannot wrap), the total at most
 * INT_MAX. Returns the total or -EINVAL.
 */
static s64 rck_target_total(const struct rck_target *t,
			    const struct rck_slice *slices, u32 nslices,
			    u32 buf_len)
{
	u64 total = 0;
	u32 i;

	if ((u64)t->first + t->nslices > nslices)
		return -EINVAL;
	for (i = 0; i < t->nslices; i++) {
		const struct rck_slice *s = &slices[t->first + i];

		if ((u64)s->off + s->len > buf_len)
			return -EINVAL;
		total += s->len;
		/* Runs may overlap: a call can check up to 2^36 slices. */
		if (!(i & 4095))
			cond_resched();
	}
	if (total > INT_MAX)
		return -EINVAL;
	return total;
}

/*
 * What the socket must be: a TCP socket (IPv4 or IPv6) that is connected
 * and not shut down for sending. The socket layer checks the state again
 * under its lock; this only gives each case its documented errno.
 */
static int rck_check_sock(struct socket *sock)
{
	struct sock *sk = sock->sk;
	int state;

	if (!sk || sock->type != SOCK_STREAM ||
	    sk->sk_protocol != IPPROTO_TCP ||
	    (sk->sk_family != AF_INET && sk->sk_family != AF_INET6))
		return -EPROTOTYPE;
	/* A reset or a shutdown: the connection existed and is gone. */
	if (READ_ONCE(sk->sk_err) ||
	    (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN))
		return -EPIPE;
	state = READ_ONCE(sk->sk_state);
	if (state == TCP_LISTEN || state == TCP_CLOSE || state == TCP_SYN_SENT)
		return -ENOTCONN;
	return 0;
}

static int rck_send_copy(struct socket *sock, const struct rck_piece *pc, int n,
			 size_t len, bool more)
{
	struct msghdr msg = {
		.msg_flags =
			MSG_DONTWAIT | MSG_NOSIGNAL | (more ? MSG_MORE : 0),
	};
	struct kvec vec[RCK_VECS];
	int i;

	for (i = 0; i < n; i++) {
		vec[i].iov_base = page_address(pc[i].page) + pc[i].off;
		vec[i].iov_len = pc[i].len;
	}
	return kernel_sendmsg(sock, &msg, vec, n, len);
}

#if RCK_HAVE_SPLICE_PAGES
static int rck_send_zc(struct socket *sock, const struct rck_piece *pc, int n,
		       size_t len, bool more)
{
	struct msghdr msg = {
		.msg_flags = MSG_SPLICE_PAGES | MSG_DONTWAIT | MSG_NOSIGNAL |
			     (more ? MSG_MORE : 0),
	};
	struct bio_vec bv[RCK_VECS];
	int i;

	for (i = 0; i < n; i++)
		bvec_set_page(&bv[i], pc[i].page, pc[i].len, pc[i].off);
	iov_iter_bvec(&msg.msg_iter, ITER_SOURCE, bv, n, len);
	return sock_sendmsg(sock, &msg);
}
#else
static int rck_send_zc(struct socket *sock, const struct rck_piece *pc, int n,
		       size_t len, bool more)
{
	int sent = 0;
	int i;

	for (i = 0; i < n; i++) {
		int flags = MSG_DONTWAIT | MSG_NOSIGNAL;
		int ret;

		if (more || i + 1 < n)
			flags |= MSG_MORE | MSG_SENDPAGE_NOTLAST;
		ret = kernel_sendpage(sock, pc[i].page, pc[i].off, pc[i].len,
				      flags);
		if (ret < 0)
			return sent ? sent : ret;
		sent += ret;
		if (ret < pc[i].len)
			break;
	}
	return sent;
}
#endif

/* Hands n pieces (len bytes) to the socket: bytes accepted or -errno. */
static int rck_send_pieces(struct socket *sock, const struct rck_piece *pc,
			   int n, size_t len, bool more, bool zc)
{
	if (zc)
		return rck_send_zc(sock, pc, n, len, more);
	return rck_send_copy(sock, pc, n, len, more);
}

/*
 * Sends a target's slices (already checked) in order, RCK_VECS pieces per
 * call, until all is sent or the socket takes less than it was offered.
 * Returns the bytes accepted, or -errno when it accepted none.
 */
static s64 rck_send_target(struct socket *sock, const struct rck_copy *kc,
			   const struct rck_slice *run, u32 nslices, s64 total,
			   bool zc)
{
	struct rck_piece pc[RCK_VECS];
	s64 sent = 0;
	s64 queued = 0;
	size_t chunk = 0;
	int n = 0;
	u32 i;

	for (i = 0; i < nslices; i++) {
		u32 off = run[i].off;
		u32 left = run[i].len;

		while (left) {
			struct page *page = kc->pages[off >> PAGE_SHIFT];
			u32 pgoff = off & ~PAGE_MASK;
			u32 len = min_t(u32, left, PAGE_SIZE - pgoff);
			int ret;

			/* Slices of adjacent frames often continue each other. */
			if (n && pc[n - 1].page == page &&
			    pc[n - 1].off + pc[n - 1].len == pgoff) {
				pc[n - 1].len += len;
			} else {
				pc[n].page = page;
				pc[n].off = pgoff;
				pc[n].len = len;
				n++;
			}
			chunk += len;
			queued += len;
			off += len;
			left -= len;
			if (n < RCK_VECS && queued < total)
				continue;
			ret = rck_send_pieces(sock, pc, n, chunk,
					      queued < total, zc);
			if (ret < 0) {
				if (sent)
					return sent;
				return ret == -ECONNRESET ? -EPIPE : ret;
			}
			sent += ret;
			if ((size_t)ret < chunk)
				return sent;
			n = 0;
			chunk = 0;
		}
	}
	return sent;
}

/* One target: look up and check the socket, send, return the result. */
static s64 rck_do_target(const struct rck_target *t,
			 const struct rck_slice *slices, u32 nslices,
			 const struct rck_copy *kc, bool zc)
{
	struct socket *sock;
	s64 total;
	s64 ret;
	int err;

	total = rck_target_total(t, slices, nslices, kc->len);
	if (total < 0)
		return total;
	sock = sockfd_lookup(t->fd, &err);
	if (!sock)
		return err;
	ret = rck_check_sock(sock);
	if (!ret && total)
		ret = rck_send_target(sock, kc, slices + t->first, t->nslices,
				      total, zc);
	sockfd_put(sock);
	return ret;
}

static long rck_ioctl_send(struct rck_send __user *uarg)
{
	struct rck_target __user *utargets;
	struct rck_slice *slices = NULL;
	struct rck_target *targets = NULL;
	struct rck_copy kc = { 0 };
	struct rck_send a;
	u64 sent = 0;
	u32 nerrors = 0;
	long ret;
	u32 i;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if ((a.flags & ~RCK_F_ALL) || a.reserved)
		return -EINVAL;
	if (a.buf_len > RCK_MAX_BUF || a.nslices > RCK_MAX_SLICES ||
	    a.ntargets > RCK_MAX_TARGETS)
		return -E2BIG;
	if ((!a.nslices && a.slices) || (!a.ntargets && a.targets))
		return -EINVAL;
	utargets = u64_to_user_ptr(a.targets);

	if (a.nslices) {
		slices = kvmalloc_array(a.nslices, sizeof(*slices),
					GFP_KERNEL_ACCOUNT);
		if (!slices)
			return -ENOMEM;
		if (copy_from_user(slices, u64_to_user_ptr(a.slices),
				   array_size(a.nslices, sizeof(*slices)))) {
			ret = -EFAULT;
			goto out;
		}
	}
	if (a.ntargets) {
		targets = kvmalloc_array(a.ntargets, sizeof(*targets),
					 GFP_KERNEL_ACCOUNT);
		if (!targets) {
			ret = -ENOMEM;
			goto out;
		}
		if (copy_from_user(targets, utargets,
				   array_size(a.ntargets, sizeof(*targets)))) {
			ret = -EFAULT;
			goto out;
		}
	}
	for (i = 0; i < a.ntargets; i++) {
		if (targets[i].reserved) {
			ret = -EINVAL;
			goto out;
		}
	}
	/*
	 * Clear every result before sending anything: an unwritable targets
	 * array fails the call here, while nothing has been sent yet.
	 */
	for (i = 0; i < a.ntargets; i++) {
		if (put_user((__s64)0, &utargets[i].result)) {
			ret = -EFAULT;
			goto out;
		}
	}
	ret = rck_copy_in(&kc, u64_to_user_ptr(a.buf), a.buf_len);
	if (ret)
		goto out;

	for (i = 0; i < a.ntargets; i++) {
		s64 r;

		/* A caller being killed reads no results: stop a long call. */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			goto out;
		}
		r = rck_do_target(&targets[i], slices, a.nslices, &kc,
				  a.flags & RCK_F_ZEROCOPY);
		if (r >= 0)
			sent += r;
		else if (r != -EAGAIN)
			nerrors++;
		if (put_user(r, &utargets[i].result)) {
			ret = -EFAULT;
			goto out;
		}
		cond_resched();
	}
	if (put_user(sent, &uarg->sent) || put_user(nerrors, &uarg->nerrors))
		ret = -EFAULT;
out:
	rck_copy_free(&kc);
	kvfree(targets);
	kvfree(slices);
	return ret;
}

static long rck_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case RCK_IOC_VERSION:
		return RCK_VERSION;
	case RCK_IOC_SEND:
		return rck_ioctl_send((struct rck_send __user *)arg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations rck_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = rck_ioctl,
	/* The structs have the same layout for 32-bit callers. */
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice rck_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = RCK_DEVICE_NAME,
	.fops = &rck_fops,
	.mode = 0600,
};

static int __init rck_init(void)
{
	return misc_register(&rck_dev);
}

static void __exit rck_exit(void)
{
	misc_deregister(&rck_dev);
}

module_init(rck_init);
module_exit(rck_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ringcast: one copy of a tick sent to many TCP sockets");
MODULE_VERSION("1");
