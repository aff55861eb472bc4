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

void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev);
void dmrs_bio_get(struct bio *bio);
unsigned int dmrs_bdev_logical_block_size(struct block_device *bdev);
unsigned short dmrs_ioprio_default(void);
void dmrs_spin_lock_init(spinlock_t *lock, const char *name,
			 struct lock_class_key *key);
unsigned long dmrs_spin_lock_irqsave(spinlock_t *lock);
void dmrs_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);

#endif
