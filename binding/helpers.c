// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of dm-mirror-rs: each one only forwards to a static inline
 * function or macro of the kernel so that Rust can call it.
 */
#include <linux/blk-integrity.h>
#include <linux/debugfs.h>
#include <linux/fault-inject.h>
#include <linux/ioprio.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/version.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "helpers.h"

void dmrs_bio_record(struct dmrs_bio_details *bd, struct bio *bio)
{
	bd->bi_bdev = bio->bi_bdev;
	bd->bi_flags = bio->bi_flags;
	bd->bi_iter = bio->bi_iter;
	bd->bi_end_io = bio->bi_end_io;
	bd->bi_remaining = atomic_read(&bio->__bi_remaining);
#if defined(CONFIG_BLK_DEV_INTEGRITY)
	bd->bi_integrity = bio_integrity(bio);
#endif
}

void dmrs_bio_restore(const struct dmrs_bio_details *bd, struct bio *bio)
{
	bio->bi_bdev = bd->bi_bdev;
	bio->bi_flags = bd->bi_flags;
	bio->bi_iter = bd->bi_iter;
	bio->bi_end_io = bd->bi_end_io;
	atomic_set(&bio->__bi_remaining, bd->bi_remaining);
#if defined(CONFIG_BLK_DEV_INTEGRITY)
	bio->bi_integrity = bd->bi_integrity;
#endif
}

void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

void dmrs_bio_get(struct bio *bio)
{
	bio_get(bio);
}

unsigned int dmrs_bdev_logical_block_size(struct block_device *bdev)
{
	return bdev_logical_block_size(bdev);
}

bool dmrs_bdev_nonrot(struct block_device *bdev)
{
	/* 7.3 has bdev_rot() instead of bdev_nonrot() */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 3, 0)
	return !bdev_rot(bdev);
#else
	return bdev_nonrot(bdev);
#endif
}

void dmrs_spin_lock_init(spinlock_t *lock, const char *name,
			 struct lock_class_key *key)
{
#ifdef CONFIG_DEBUG_SPINLOCK
	__raw_spin_lock_init(spinlock_check(lock), name, key, LD_WAIT_CONFIG);
#else
	spin_lock_init(lock);
#endif
}

unsigned long dmrs_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

void dmrs_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

unsigned short dmrs_ioprio_default(void)
{
	return IOPRIO_DEFAULT;
}

/* Sleeps until *var reads zero (acquire); woken by dmrs_wake_up_var(var). */
void dmrs_wait_var_zero(unsigned long *var)
{
	wait_var_event(var, smp_load_acquire(var) == 0);
}

/*
 * Wakes whoever waits in dmrs_wait_var_zero(var). The barrier orders the
 * caller's store to *var before wake_up_var()'s lockless look at the wait
 * queue, as wake_up_var() requires. *var itself is not read: it may be freed.
 */
void dmrs_wake_up_var(void *var)
{
	smp_mb();
	wake_up_var(var);
}

/* One ratelimit state (the kernel's defaults) for the module's I/O errors. */
static DEFINE_RATELIMIT_STATE(dmrs_io_error_rs, DEFAULT_RATELIMIT_INTERVAL,
			      DEFAULT_RATELIMIT_BURST);

bool dmrs_io_error_ratelimit(void)
{
	return __ratelimit(&dmrs_io_error_rs);
}

/* cond_resched() is a macro; the might_resched check stays in it. */
void dmrs_cond_resched(void)
{
	cond_resched();
}

void dmrs_fault_attr_init(struct fault_attr *attr)
{
#ifdef CONFIG_FAULT_INJECTION
	*attr = (struct fault_attr)FAULT_ATTR_INITIALIZER;
#else
	/* An empty struct; should_fail() is then always false. */
	*attr = (struct fault_attr){};
#endif
}

void dmrs_fault_create_debugfs_attr(const char *name, struct dentry *parent,
				    struct fault_attr *attr)
{
	/* An ERR_PTR when the kernel has no CONFIG_FAULT_INJECTION_DEBUG_FS. */
	fault_create_debugfs_attr(name, parent, attr);
}

bool dmrs_should_fail(struct fault_attr *attr)
{
	return should_fail(attr, 1);
}

void *dmrs_kmalloc(size_t size, gfp_t flags)
{
	return kmalloc(size, flags);
}

/*
 * One thread of work at a time (max_active 1), named by the caller, bound to
 * the CPU that queues (WQ_PERCPU, as the C dm-raid1's kmirrord): 7.3 warns
 * when a workqueue says neither WQ_PERCPU nor WQ_UNBOUND; Debian's 6.12
 * defines WQ_PERCPU and binds by default.
 */
struct workqueue_struct *dmrs_alloc_workqueue(const char *name,
					      unsigned int flags)
{
	return alloc_workqueue("%s", flags | WQ_PERCPU, 1, name);
}

struct dentry *dmrs_debugfs_create_file(const char *name, umode_t mode,
					struct dentry *parent, void *data,
					const struct file_operations *fops)
{
	return debugfs_create_file(name, mode, parent, data, fops);
}

/*
 * Without CONFIG_DEBUG_FS (the bench and demo kernel) these are static
 * inlines, which bindgen does not see: through C the module calls them on
 * every kernel (debugfs_create_dir then returns ERR_PTR(-ENODEV)).
 */
struct dentry *dmrs_debugfs_create_dir(const char *name, struct dentry *parent)
{
	return debugfs_create_dir(name, parent);
}

void dmrs_debugfs_remove(struct dentry *dentry)
{
	debugfs_remove(dentry);
}
