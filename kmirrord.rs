// SPDX-License-Identifier: GPL-2.0

//! kmirrord: the mirror's worker. Bios that need more than a remap (writes,
//! flushes, discards) are queued by `map` and handled here, on the mirror's
//! own `WQ_MEM_RECLAIM` workqueue, so the I/O path never waits for memory that
//! only its own progress could free.

use crate::binding::bio::Op;
use crate::binding::dmio::IoRegion;
use crate::binding::raw::{blk_opf_t, req_op_REQ_OP_DISCARD, req_op_REQ_OP_WRITE};
use crate::{MirrorSet, MAX_LEGS};
use kernel::sync::Arc;
use kernel::workqueue::WorkItem;

impl WorkItem for MirrorSet {
    type Pointer = Arc<MirrorSet>;

    fn run(this: Arc<MirrorSet>) {
        do_mirror(&this);
    }
}

/// Asks kmirrord to run.
pub(crate) fn wake(ms: &Arc<MirrorSet>) {
    ms.wq.enqueue(ms.clone());
}

/// One pass of kmirrord: take every queued write and send it to all legs.
fn do_mirror(ms: &MirrorSet) {
    let mut writes = ms.queues.lock().writes.take();
    while let Some(bio) = writes.pop() {
        let op = bio.op();
        let discard = op == Op::Discard;
        let base: blk_opf_t = if discard {
            req_op_REQ_OP_DISCARD
        } else {
            req_op_REQ_OP_WRITE
        };
        let opf = base | bio.flush_fua_flags();
        let count = bio.sectors();
        let mut regions = [IoRegion::empty(); MAX_LEGS];
        for (slot, leg) in regions.iter_mut().zip(ms.legs.iter()) {
            // An empty flush has no data range: dm-io sends just the flush.
            let sector = if count == 0 {
                0
            } else {
                leg.offset + ms.geo.target_offset(bio.sector())
            };
            *slot = IoRegion::new(&leg.dev, sector, count);
        }
        let regions = regions.get(..ms.legs.len()).unwrap_or(&[]);
        ms.io_client.submit_bio_to_all(bio, regions, opf, discard);
    }
}
