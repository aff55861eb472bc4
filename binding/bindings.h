/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input to bindgen for dm-mirror-rs's binding layer: the kernel headers the
 * mirror target needs, plus constants that are macros bindgen cannot evaluate
 * on its own. bindgen evaluates the initialisers below with the kernel's own
 * config, and the build renames DMRS_CONST_X to X.
 */
#include <linux/bio.h>
#include <linux/blk_types.h>
#include <linux/blkdev.h>
#include <linux/debugfs.h>
#include <linux/device-mapper.h>
#include <linux/fault-inject.h>
#include <linux/fs.h>
#include <linux/ioprio.h>
#include <linux/dm-io.h>
#include <linux/dm-kcopyd.h>
#include <linux/mempool.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>

#include "helpers.h"

const gfp_t DMRS_CONST_GFP_NOIO = GFP_NOIO;
const gfp_t DMRS_CONST_GFP_ATOMIC = GFP_ATOMIC;
const gfp_t DMRS_CONST_GFP_KERNEL = GFP_KERNEL;
const gfp_t DMRS_CONST___GFP_NOFAIL = __GFP_NOFAIL;
const gfp_t DMRS_CONST___GFP_NOWARN = __GFP_NOWARN;
const gfp_t DMRS_CONST___GFP_NORETRY = __GFP_NORETRY;
const blk_opf_t DMRS_CONST_REQ_OP_MASK = REQ_OP_MASK;
const blk_opf_t DMRS_CONST_REQ_PREFLUSH = REQ_PREFLUSH;
const blk_opf_t DMRS_CONST_REQ_FUA = REQ_FUA;
const blk_opf_t DMRS_CONST_REQ_RAHEAD = REQ_RAHEAD;
const blk_opf_t DMRS_CONST_REQ_SYNC = REQ_SYNC;
const blk_opf_t DMRS_CONST_REQ_ATOMIC = REQ_ATOMIC;
const blk_status_t DMRS_CONST_BLK_STS_OK = BLK_STS_OK;
const blk_status_t DMRS_CONST_BLK_STS_IOERR = BLK_STS_IOERR;
const blk_status_t DMRS_CONST_BLK_STS_DM_REQUEUE = BLK_STS_DM_REQUEUE;
const blk_status_t DMRS_CONST_BLK_STS_NOTSUPP = BLK_STS_NOTSUPP;
const blk_status_t DMRS_CONST_BLK_STS_INVAL = BLK_STS_INVAL;
const unsigned int DMRS_CONST_WQ_MEM_RECLAIM = WQ_MEM_RECLAIM;
const blk_mode_t DMRS_CONST_BLK_OPEN_READ = BLK_OPEN_READ;
const blk_mode_t DMRS_CONST_BLK_OPEN_WRITE = BLK_OPEN_WRITE;
#ifdef DM_TARGET_ATOMIC_WRITES
/* 7.3 and later: device-mapper passes atomic writes to targets that say so */
const unsigned long long DMRS_CONST_DM_TARGET_ATOMIC_WRITES = DM_TARGET_ATOMIC_WRITES;
#endif
