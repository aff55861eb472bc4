// SPDX-License-Identifier: GPL-2.0

//! Bios handed to the target by device-mapper.
//!
//! A [`DmBio`] is the target's duty to finish one bio: whoever holds it must
//! either give it back to device-mapper (remap), or complete it with
//! [`DmBio::endio`]. A handle dropped without either completes the bio with an
//! I/O error, so a bio can never be lost silently.

use super::dm::{TargetDevice, TargetOps};
use super::raw;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// The operation a bio asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Read data.
    Read,
    /// Write data (may carry PREFLUSH/FUA; an empty PREFLUSH write is a flush).
    Write,
    /// Discard a range.
    Discard,
    /// Anything else (write-zeroes, secure erase, zone operations...).
    Other,
}

/// A request operation with its flags, for I/O a target issues itself
/// through dm-io or kcopyd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReqOp(raw::blk_opf_t);

impl ReqOp {
    /// Read.
    pub(crate) const READ: ReqOp = ReqOp(raw::req_op_REQ_OP_READ);
    /// Write.
    pub(crate) const WRITE: ReqOp = ReqOp(raw::req_op_REQ_OP_WRITE);
    /// Discard.
    pub(crate) const DISCARD: ReqOp = ReqOp(raw::req_op_REQ_OP_DISCARD);

    /// Flush the device's volatile cache before the request.
    pub(crate) const fn preflush(self) -> ReqOp {
        ReqOp(self.0 | raw::REQ_PREFLUSH)
    }

    /// Someone waits for the request (an I/O scheduler hint).
    pub(crate) const fn sync(self) -> ReqOp {
        ReqOp(self.0 | raw::REQ_SYNC)
    }

    /// The request also carries `flags` (taken from a bio).
    pub(crate) const fn with(self, flags: WriteFlags) -> ReqOp {
        ReqOp(self.0 | flags.0)
    }

    /// Whether the operation is a discard.
    pub(crate) const fn is_discard(self) -> bool {
        self.0 & raw::REQ_OP_MASK == raw::req_op_REQ_OP_DISCARD
    }

    pub(super) const fn raw(self) -> raw::blk_opf_t {
        self.0
    }
}

/// The flags of a write that the requests carrying its data must repeat:
/// PREFLUSH, FUA and ATOMIC (the data reaches each device whole or not at
/// all; only 7.3's device-mapper sends such writes, to a target that says it
/// takes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriteFlags(raw::blk_opf_t);

/// Completion status of a bio.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Status(raw::blk_status_t);

impl Status {
    /// Success.
    pub(crate) const OK: Status = Status(raw::BLK_STS_OK);
    /// An I/O error.
    pub(crate) const IOERR: Status = Status(raw::BLK_STS_IOERR);
    /// Device-mapper should requeue the bio (noflush suspend).
    pub(crate) const DM_REQUEUE: Status = Status(raw::BLK_STS_DM_REQUEUE);
    /// The operation is not supported.
    pub(crate) const NOTSUPP: Status = Status(raw::BLK_STS_NOTSUPP);
    /// The request is invalid for the device (an atomic write larger than
    /// it can do, say).
    pub(crate) const INVAL: Status = Status(raw::BLK_STS_INVAL);

    pub(crate) fn is_ok(self) -> bool {
        self == Self::OK
    }

    pub(crate) fn from_raw(s: raw::blk_status_t) -> Self {
        Status(s)
    }

    pub(crate) fn raw(self) -> raw::blk_status_t {
        self.0
    }
}

/// What a remapped bio needs back before it can be resent after completing
/// (its iterator, device, flags and completion), kept in the bio's per-bio
/// data by [`DmBio::remap`]; only the binding reads it.
pub(crate) struct BioRecord {
    details: raw::dmrs_bio_details,
    set: bool,
}

impl BioRecord {
    /// A record of nothing (a bio not remapped yet).
    pub(crate) fn unset() -> Self {
        Self {
            details: raw::dmrs_bio_details::default(),
            set: false,
        }
    }

    /// Whether the record holds a bio's fields.
    pub(crate) fn is_set(&self) -> bool {
        self.set
    }

    /// The recorded fields, once: the record is unset afterwards.
    pub(crate) fn take_raw(&mut self) -> &raw::dmrs_bio_details {
        self.set = false;
        &self.details
    }
}

// SAFETY: The record only holds copies of a bio's fields; the pointers in it
// are only used to restore that same bio.
unsafe impl Send for BioRecord {}

/// A bio of a device-mapper target of type `T`, which the holder must finish.
///
/// # Invariants
///
/// `ptr` points to a live bio that device-mapper passed to `T`'s map function
/// and that has not been completed or handed back yet; its per-bio data is a
/// [`super::dm::PerBio<T>`]. Exactly one `DmBio` exists for it.
pub(crate) struct DmBio<T: TargetOps> {
    ptr: NonNull<raw::bio>,
    _target: PhantomData<T>,
}

// SAFETY: A bio may be completed or remapped from any thread; the handle is
// unique, so there is no shared access.
unsafe impl<T: TargetOps> Send for DmBio<T> {}

impl<T: TargetOps> DmBio<T> {
    /// # Safety
    ///
    /// `ptr` must satisfy the type invariants, and the caller gives up its
    /// own duty to finish the bio.
    pub(crate) unsafe fn from_raw(ptr: NonNull<raw::bio>) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            ptr,
            _target: PhantomData,
        }
    }

    /// Gives up the handle without finishing the bio.
    pub(crate) fn into_raw(self) -> NonNull<raw::bio> {
        let ptr = self.ptr;
        core::mem::forget(self);
        ptr
    }

    pub(crate) fn as_ptr(&self) -> *mut raw::bio {
        self.ptr.as_ptr()
    }

    fn bio(&self) -> &raw::bio {
        // SAFETY: The bio is live and owned by this handle (type invariant).
        unsafe { self.ptr.as_ref() }
    }

    fn bio_mut(&mut self) -> &mut raw::bio {
        // SAFETY: The bio is live and owned by this handle (type invariant).
        unsafe { self.ptr.as_mut() }
    }

    /// The raw operation and flags word.
    pub(crate) fn opf(&self) -> raw::blk_opf_t {
        self.bio().bi_opf
    }

    /// The operation.
    pub(crate) fn op(&self) -> Op {
        let op = self.opf() & raw::REQ_OP_MASK;
        if op == raw::req_op_REQ_OP_READ {
            Op::Read
        } else if op == raw::req_op_REQ_OP_WRITE {
            Op::Write
        } else if op == raw::req_op_REQ_OP_DISCARD {
            Op::Discard
        } else {
            Op::Other
        }
    }

    /// Whether the bio asks for a cache flush before it.
    pub(crate) fn is_preflush(&self) -> bool {
        self.opf() & raw::REQ_PREFLUSH != 0
    }

    /// Whether the bio is read-ahead (may be failed without harm).
    pub(crate) fn is_readahead(&self) -> bool {
        self.opf() & raw::REQ_RAHEAD != 0
    }

    /// The PREFLUSH, FUA and ATOMIC flags of the bio.
    pub(crate) fn write_flags(&self) -> WriteFlags {
        WriteFlags(self.opf() & (raw::REQ_PREFLUSH | raw::REQ_FUA | raw::REQ_ATOMIC))
    }

    /// First sector addressed, in the mapped device's sector space.
    pub(crate) fn sector(&self) -> u64 {
        self.bio().bi_iter.bi_sector
    }

    /// Length in bytes.
    pub(crate) fn size(&self) -> u32 {
        self.bio().bi_iter.bi_size
    }

    /// Length in 512-byte sectors.
    pub(crate) fn sectors(&self) -> u64 {
        u64::from(self.size() >> raw::SECTOR_SHIFT)
    }

    /// Sends the bio to `leg` at `sector` (a sector of that device). The
    /// caller then returns it to device-mapper as remapped. What the remap
    /// changes is recorded first, for [`super::dm::EndIoBio::take_restored`].
    pub(crate) fn remap(&mut self, leg: &TargetDevice, sector: u64) {
        // SAFETY: The bio is live and owned (type invariant), its per-bio data
        // an initialised `PerBio<T>` that only this handle accesses.
        unsafe {
            let rec = &mut (*super::dm::per_bio::<T>(self.ptr)).record;
            raw::dmrs_bio_record(&mut rec.details, self.ptr.as_ptr());
            rec.set = true;
        }
        // SAFETY: The bio is live and owned (type invariant); the block device
        // of an open leg is live.
        unsafe { raw::dmrs_bio_set_dev(self.ptr.as_ptr(), leg.bdev()) };
        self.bio_mut().bi_iter.bi_sector = sector;
    }

    /// Submits a bio remapped with [`DmBio::remap`] from the target's own
    /// context; its completion comes back through the target's `end_io`.
    pub(crate) fn submit_remapped(self) {
        let ptr = self.into_raw().as_ptr();
        // SAFETY: The bio is live and owned (type invariant); device-mapper
        // completes it through the target's end_io.
        unsafe { raw::submit_bio_noacct(ptr) };
    }

    /// The per-bio data the target keeps with this bio.
    pub(crate) fn data(&self) -> &T::BioData {
        // SAFETY: The per-bio data of a `T` bio is an initialised `PerBio<T>`
        // (type invariant), live as long as the bio.
        unsafe { &(*super::dm::per_bio::<T>(self.ptr)).data }
    }

    /// The per-bio data the target keeps with this bio, mutably.
    pub(crate) fn data_mut(&mut self) -> &mut T::BioData {
        // SAFETY: As in `data`; the handle is unique, so this is the only
        // access.
        unsafe { &mut (*super::dm::per_bio::<T>(self.ptr)).data }
    }

    /// Completes the bio with `status`.
    pub(crate) fn endio(self, status: Status) {
        let ptr = self.into_raw().as_ptr();
        // SAFETY: The bio is live and we own its completion (type invariant),
        // which `into_raw` handed over to us.
        unsafe {
            (*ptr).bi_status = status.raw();
            raw::bio_endio(ptr);
        }
    }
}

impl<T: TargetOps> Drop for DmBio<T> {
    fn drop(&mut self) {
        // A bio nobody finished: fail it rather than leave its submitter
        // waiting forever.
        // SAFETY: The bio is live and owned by this handle (type invariant).
        unsafe {
            (*self.ptr.as_ptr()).bi_status = raw::BLK_STS_IOERR;
            raw::bio_endio(self.ptr.as_ptr());
        }
    }
}

/// A FIFO list of target bios, linked through `bi_next` (no allocation).
///
/// # Invariants
///
/// `head..tail` is a `bi_next` chain of bios each satisfying
/// [`DmBio`]'s invariants and owned by the list.
pub(crate) struct BioList<T: TargetOps> {
    head: *mut raw::bio,
    tail: *mut raw::bio,
    _target: PhantomData<T>,
}

// SAFETY: The list owns its bios, which may be finished from any thread.
unsafe impl<T: TargetOps> Send for BioList<T> {}

impl<T: TargetOps> BioList<T> {
    /// An empty list.
    pub(crate) const fn new() -> Self {
        // INVARIANT: An empty chain.
        Self {
            head: core::ptr::null_mut(),
            tail: core::ptr::null_mut(),
            _target: PhantomData,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// Appends a bio.
    pub(crate) fn push(&mut self, bio: DmBio<T>) {
        let ptr = bio.into_raw().as_ptr();
        // SAFETY: `ptr` is a live bio we now own; `tail`, when not null, is
        // the last bio of the chain (type invariant).
        unsafe {
            (*ptr).bi_next = core::ptr::null_mut();
            if self.tail.is_null() {
                self.head = ptr;
            } else {
                (*self.tail).bi_next = ptr;
            }
        }
        self.tail = ptr;
    }

    /// Removes the first bio.
    pub(crate) fn pop(&mut self) -> Option<DmBio<T>> {
        let ptr = NonNull::new(self.head)?;
        // SAFETY: `head` is the first live bio of the chain (type invariant).
        unsafe {
            self.head = (*ptr.as_ptr()).bi_next;
            (*ptr.as_ptr()).bi_next = core::ptr::null_mut();
        }
        if self.head.is_null() {
            self.tail = core::ptr::null_mut();
        }
        // SAFETY: The bio came out of the list, which owned it.
        Some(unsafe { DmBio::from_raw(ptr) })
    }

    /// Moves every bio of `other` to the end of this list.
    ///
    /// Constant time: the chains are joined, not walked (callers hold an
    /// interrupt-disabling lock while doing this).
    pub(crate) fn append(&mut self, other: &mut BioList<T>) {
        let other = other.take();
        if other.head.is_null() {
            return;
        }
        if self.tail.is_null() {
            self.head = other.head;
        } else {
            // SAFETY: `tail` is the last live bio of our chain (type
            // invariant); `other.head` starts a chain we now own.
            unsafe { (*self.tail).bi_next = other.head };
        }
        self.tail = other.tail;
        // `other`'s bios belong to `self` now: don't let its drop fail them.
        core::mem::forget(other);
    }

    /// Takes all bios, leaving the list empty.
    pub(crate) fn take(&mut self) -> BioList<T> {
        core::mem::replace(self, BioList::new())
    }
}

impl<T: TargetOps> Drop for BioList<T> {
    fn drop(&mut self) {
        // Each popped handle fails its bio when dropped.
        while self.pop().is_some() {}
    }
}
