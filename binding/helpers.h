/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of dm-mirror-rs: thin wrappers of static inline functions and
 * macros that Rust cannot call directly. No logic lives here.
 */
#ifndef DMRS_HELPERS_H
#define DMRS_HELPERS_H

#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/spinlock.h>

/*
 * What a remapped bio must get back before it can be sent to another device
 * after completing: the same fields drivers/md/dm-bio-record.h keeps (that
 * header is private to drivers/md, so an out-of-tree module cannot use it).
 */
struct dmrs_bio_details {
	struct block_device *bi_bdev;
	unsigned long bi_flags;
	struct bvec_iter bi_iter;
	bio_end_io_t *bi_end_io;
	int bi_remaining;
#if defined(CONFIG_BLK_DEV_INTEGRITY)
	struct bio_integrity_payload *bi_integrity;
#endif
};

void dmrs_bio_record(struct dmrs_bio_details *bd, struct bio *bio);
void dmrs_bio_restore(const struct dmrs_bio_details *bd, struct bio *bio);
void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev);
void dmrs_bio_get(struct bio *bio);
unsigned int dmrs_bdev_logical_block_size(struct block_device *bdev);
bool dmrs_bdev_nonrot(struct block_device *bdev);
unsigned short dmrs_ioprio_default(void);
void dmrs_spin_lock_init(spinlock_t *lock, const char *name,
			 struct lock_class_key *key);
unsigned long dmrs_spin_lock_irqsave(spinlock_t *lock);
void dmrs_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
bool dmrs_io_error_ratelimit(void);
void dmrs_cond_resched(void);
struct fault_attr;
struct dentry;
void dmrs_fault_attr_init(struct fault_attr *attr);
void dmrs_fault_create_debugfs_attr(const char *name, struct dentry *parent,
				    struct fault_attr *attr);
bool dmrs_should_fail(struct fault_attr *attr);
void dmrs_wait_var_zero(unsigned long *var);
/*
 * Calls that are functions in one kernel and macros in another (7.3 made
 * alloc_workqueue, krealloc and debugfs_create_file macros): through C, the
 * module calls them the same way on every kernel.
 */
struct workqueue_struct;
struct file_operations;
void *dmrs_kmalloc(size_t size, gfp_t flags);
struct workqueue_struct *dmrs_alloc_workqueue(const char *name,
					      unsigned int flags);
struct dentry *dmrs_debugfs_create_file(const char *name, umode_t mode,
					struct dentry *parent, void *data,
					const struct file_operations *fops);
void dmrs_wake_up_var(void *var);
struct dentry *dmrs_debugfs_create_dir(const char *name, struct dentry *parent);
void dmrs_debugfs_remove(struct dentry *dentry);

#endif
