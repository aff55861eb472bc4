// SPDX-License-Identifier: GPL-2.0

//! Device-mapper targets: registration, the target operations trait, the
//! target handle and the devices a target opens.
//!
//! In the spirit of the 2023 "Rust device mapper abstractions" RFC: a target
//! implements [`TargetOps`]; [`Registration`] builds the C `target_type`
//! whose callbacks forward to it. The target's state is a [`TargetState<T>`]
//! kept in `ti->private` from the constructor until the destructor, which
//! drops it after every [`TargetRef`] to it is gone (see `target.rs`).

use super::bio::{DmBio, Status};
use super::bounded_writer::BoundedWriter;
use super::compat::{fmt, vtable_default};
use super::raw;
use super::target::{TargetBorrow, TargetRef, TargetState};
use core::ffi::c_void;
use core::ptr::NonNull;
use kernel::c_str;
use kernel::ffi::{c_char, c_int, c_uint};
use kernel::prelude::*;
use kernel::str::CString;

/// What `map` did with a bio.
pub(crate) enum MapResult<T: TargetOps> {
    /// The bio was remapped to a leg; device-mapper submits it.
    Remapped(DmBio<T>),
    /// The target kept the bio and will finish it.
    Submitted,
    /// Device-mapper should fail the bio.
    Kill(DmBio<T>),
}

/// The kind of status line asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusType {
    /// `dmsetup status`.
    Info,
    /// `dmsetup table`.
    Table,
    /// The IMA measurement line.
    Ima,
}

/// An error from a constructor: the message for `ti->error` and the errno.
pub(crate) struct CtrError {
    pub(crate) msg: &'static core::ffi::CStr,
    pub(crate) err: Error,
}

impl CtrError {
    /// A table the constructor cannot accept (-EINVAL).
    pub(crate) fn inval(msg: &'static core::ffi::CStr) -> Self {
        Self { msg, err: EINVAL }
    }

    /// Any other failure.
    pub(crate) fn new(msg: &'static core::ffi::CStr, err: Error) -> Self {
        Self { msg, err }
    }
}

/// The operations of a device-mapper target.
///
/// A `#[vtable]` trait: device-mapper gets a callback only for the optional
/// operations the target implements (`HAS_*`), as for a C `target_type`
/// that leaves the others NULL. `ctr`, `map` and `status` are required; the
/// binding always installs `dtr`, which drops the state.
///
/// The callbacks borrow the target's state for their duration; work that
/// outlives a callback takes a [`TargetRef`] with [`TargetBorrow::to_ref`].
/// Device-mapper calls no callback during or after `dtr`, and the state is
/// dropped in the destructor once every [`TargetRef`] is gone.
#[vtable]
pub(crate) trait TargetOps: Send + Sync + Sized + 'static {
    /// Data device-mapper keeps with each bio for the target.
    type BioData: Default + Send;

    /// The target takes atomic writes: it passes the `REQ_ATOMIC` flag of a
    /// write on to every request that carries its data (see
    /// [`super::bio::DmBio::write_flags`]) and never splits one. Where the
    /// kernel's device-mapper can offer atomic writes ([`ATOMIC_WRITES`]),
    /// the registration says so.
    const ATOMIC_WRITES: bool = false;

    /// Builds the target from its table arguments.
    fn ctr(ti: &mut TargetSetup<'_>, args: &[&str]) -> Result<TargetState<Self>, CtrError>;

    /// Called before the target's state is dropped, after all its I/O ended:
    /// stop whatever would keep taking new [`TargetRef`]s, since the state
    /// is dropped only when the last one is gone.
    fn dtr(this: TargetBorrow<'_, Self>) {
        let _ = this;
    }

    /// Maps a bio.
    fn map(this: TargetBorrow<'_, Self>, bio: DmBio<Self>) -> MapResult<Self>;

    /// Sees a bio complete. It may take the bio back ([`EndIoBio::take`]),
    /// e.g. to retry it; then the target finishes it, else device-mapper
    /// goes on completing it with its (possibly changed) status.
    fn end_io(_this: TargetBorrow<'_, Self>, _bio: &mut EndIoBio<'_, Self>) {
        vtable_default!()
    }

    /// Start of a suspend: stop background work.
    fn presuspend(_this: TargetBorrow<'_, Self>) {
        vtable_default!()
    }

    /// End of a suspend: all I/O has been drained.
    fn postsuspend(_this: TargetBorrow<'_, Self>) {
        vtable_default!()
    }

    /// Resume after a suspend, or the first activation.
    fn resume(_this: TargetBorrow<'_, Self>) {
        vtable_default!()
    }

    /// Writes a status or table line.
    fn status(this: TargetBorrow<'_, Self>, ty: StatusType, out: &mut BoundedWriter<'_>);

    /// Handles `dmsetup message`.
    fn message(
        _this: TargetBorrow<'_, Self>,
        _args: &[&str],
        _out: &mut BoundedWriter<'_>,
    ) -> Result {
        vtable_default!()
    }

    /// Calls [`DeviceVisitor::visit`] for each device and the area of it the
    /// target uses, and stops where the visitor asks to.
    fn iterate_devices(
        _this: TargetBorrow<'_, Self>,
        _visit: &mut DeviceVisitor<'_>,
    ) -> core::result::Result<(), VisitStop> {
        vtable_default!()
    }
}

/// A device visitor's request to stop: the non-zero value of device-mapper's
/// callout, handed back to it as the result of `iterate_devices`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VisitStop(c_int);

/// A bio being completed, as seen by `end_io`.
///
/// # Invariants
///
/// `ptr` is a live bio of the target `target`, completing; `status` is its
/// completion status that device-mapper passed to `end_io`. Until `taken`
/// is set, device-mapper owns the bio's completion (and the pending bio
/// keeps the target alive); once set, the target owns it, and `keep` holds a
/// counted reference so the target's state outlives the `end_io` call.
pub(crate) struct EndIoBio<'a, T: TargetOps> {
    ptr: NonNull<raw::bio>,
    status: &'a mut raw::blk_status_t,
    target: TargetBorrow<'a, T>,
    taken: bool,
    keep: Option<TargetRef<T>>,
}

impl<T: TargetOps> EndIoBio<'_, T> {
    /// The completion status.
    pub(crate) fn status(&self) -> Status {
        Status::from_raw(*self.status)
    }

    /// The target's per-bio data.
    pub(crate) fn data(&self) -> &T::BioData {
        // SAFETY: The bio is a live `T` bio, so its per-bio data is an
        // initialised `PerBio<T>`.
        unsafe { &(*per_bio::<T>(self.ptr)).data }
    }

    /// The target's per-bio data, mutably, while the bio is not taken
    /// (`None` after [`Self::take`]: the taken bio's handle owns it then).
    pub(crate) fn data_mut(&mut self) -> Option<&mut T::BioData> {
        if self.taken {
            return None;
        }
        // SAFETY: The bio is a live `T` bio, so its per-bio data is an
        // initialised `PerBio<T>`; the completing bio is this callback's and
        // not taken, so no `DmBio` handle to it exists and `&mut self`
        // makes this the only access.
        Some(unsafe { &mut (*per_bio::<T>(self.ptr)).data })
    }

    fn opf(&self) -> raw::blk_opf_t {
        // SAFETY: The bio is live during the callback.
        unsafe { self.ptr.as_ref().bi_opf }
    }

    /// Whether the bio is a read.
    pub(crate) fn is_read(&self) -> bool {
        self.opf() & raw::REQ_OP_MASK == raw::req_op_REQ_OP_READ
    }

    /// Whether the bio is read-ahead.
    pub(crate) fn is_readahead(&self) -> bool {
        self.opf() & raw::REQ_RAHEAD != 0
    }

    /// Takes the bio back to send it again: restores what its last
    /// [`DmBio::remap`] changed (recorded by the binding in the bio's own
    /// per-bio data) and clears its status. Returns `None` if the bio was
    /// already taken or was never remapped (nothing to restore).
    pub(crate) fn take_restored(&mut self) -> Option<DmBio<T>> {
        // SAFETY: The bio is a live `T` bio, so its per-bio data is an
        // initialised `PerBio<T>`; the completing bio is this callback's.
        if self.taken || !unsafe { (*per_bio::<T>(self.ptr)).record.is_set() } {
            return None;
        }
        let bio = self.take()?;
        // SAFETY: The bio is ours again and live; its per-bio record holds
        // its own fields from before its last remap (checked above).
        unsafe {
            let rec = &mut (*per_bio::<T>(self.ptr)).record;
            raw::dmrs_bio_restore(rec.take_raw(), bio.as_ptr());
            (*bio.as_ptr()).bi_status = raw::BLK_STS_OK;
        }
        *self.status = raw::BLK_STS_OK;
        Some(bio)
    }

    /// Takes the bio back to finish it later. Returns `None` if already
    /// taken.
    pub(crate) fn take(&mut self) -> Option<DmBio<T>> {
        if self.taken {
            return None;
        }
        // The bio may complete for good elsewhere before `end_io` returns;
        // the state must outlive the call that borrows it.
        self.keep = Some(self.target.to_ref());
        self.taken = true;
        // SAFETY: With `DM_ENDIO_INCOMPLETE`, device-mapper leaves the bio to
        // the target, so the target owns its completion.
        Some(unsafe { DmBio::from_raw(self.ptr) })
    }
}

/// The per-bio data device-mapper reserves for a `T` target.
///
/// # Invariants
///
/// Written by `map_callback` before the bio is handed to the target:
/// `target` is the state (owner's box) of the `T` target that mapped the
/// bio, and `record`, when set, holds the bio's fields from before its last
/// remap.
pub(crate) struct PerBio<T: TargetOps> {
    /// The target's state (the address of its owner's box), valid while the
    /// bio is in flight.
    pub(crate) target: *const c_void,
    /// The bio as it was before its last remap, to send it again.
    pub(crate) record: super::bio::BioRecord,
    pub(crate) data: T::BioData,
}

/// Returns the per-bio data of `bio`.
///
/// # Safety
///
/// `bio` must be a live bio of a `T` target (`ti->per_io_data_size` set by
/// [`Registration`]).
pub(crate) unsafe fn per_bio<T: TargetOps>(bio: NonNull<raw::bio>) -> *mut PerBio<T> {
    // SAFETY: The caller guarantees the bio has a `PerBio<T>` in front.
    unsafe { raw::dm_per_bio_data(bio.as_ptr(), core::mem::size_of::<PerBio<T>>()).cast() }
}

/// Returns the target state of a bio of a `T` target.
///
/// # Safety
///
/// As [`per_bio`]; the bio must have been seen by `map` of a target whose
/// state is still alive (it is while any of its bios is in flight).
pub(crate) unsafe fn bio_target<'a, T: TargetOps>(bio: NonNull<raw::bio>) -> TargetBorrow<'a, T> {
    // SAFETY: `map` stored the owner's pointer; device-mapper destroys no
    // target while one of its bios is in flight.
    unsafe { TargetState::borrow_raw((*per_bio::<T>(bio)).target) }
}

/// The target under construction, as seen by the constructor.
pub(crate) struct TargetSetup<'a> {
    ti: &'a mut raw::dm_target,
}

impl TargetSetup<'_> {
    /// Length of the target in sectors.
    pub(crate) fn len(&self) -> u64 {
        self.ti.len
    }

    /// A handle to the target for use after construction.
    pub(crate) fn target(&self) -> Target {
        // INVARIANT: The target lives until its destructor has run, which
        // drops the state holding this handle.
        Target {
            ti: NonNull::from(&*self.ti),
        }
    }

    /// Opens a device named by the table (a path or `major:minor`).
    pub(crate) fn get_device(&self, path: &str) -> Result<TargetDevice> {
        let cpath = CString::try_from_fmt(fmt!("{}", path))?;
        let ti = core::ptr::from_ref(self.ti).cast_mut();
        let mut dev: *mut raw::dm_dev = core::ptr::null_mut();
        // SAFETY: `ti` is the target under construction, its table is live;
        // `cpath` is NUL-terminated.
        let ret = unsafe {
            let mode = raw::dm_table_get_mode((*ti).table);
            raw::dm_get_device(ti, cpath.as_char_ptr(), mode, &mut dev)
        };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        let dev = NonNull::new(dev).ok_or(ENODEV)?;
        // INVARIANT: `dm_get_device` succeeded, we own one reference.
        Ok(TargetDevice {
            dev,
            ti: NonNull::from(&*self.ti),
        })
    }

    /// Splits I/O so no bio crosses a multiple of `sectors`.
    pub(crate) fn set_max_io_len(&mut self, sectors: u32) -> Result {
        let ti: *mut raw::dm_target = self.ti;
        // SAFETY: `ti` is valid and under construction.
        let ret = unsafe { raw::dm_set_target_max_io_len(ti, u64::from(sectors)) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Number of empty flush bios the target wants per flush.
    pub(crate) fn set_num_flush_bios(&mut self, n: u32) {
        self.ti.num_flush_bios = n;
    }

    /// Number of discard bios the target wants per discard.
    pub(crate) fn set_num_discard_bios(&mut self, n: u32) {
        self.ti.num_discard_bios = n;
    }
}

/// A handle to a constructed target.
///
/// # Invariants
///
/// `ti` points to a live `dm_target` (the handle is only stored in that
/// target's own state, which is dropped by its destructor).
#[derive(Clone, Copy)]
pub(crate) struct Target {
    ti: NonNull<raw::dm_target>,
}

// SAFETY: The fields used are read-only after construction, and
// `dm_table_event` may be called from any thread.
unsafe impl Send for Target {}
// SAFETY: As above.
unsafe impl Sync for Target {}

impl Target {
    /// First sector of the target in the mapped device.
    pub(crate) fn begin(&self) -> u64 {
        // SAFETY: The target is live (type invariant).
        unsafe { self.ti.as_ref().begin }
    }

    /// Length in sectors.
    pub(crate) fn len(&self) -> u64 {
        // SAFETY: The target is live (type invariant).
        unsafe { self.ti.as_ref().len }
    }

    /// Raises a table event (what `dmsetup wait` waits for). Sleeps:
    /// process context only.
    pub(crate) fn table_event(&self) {
        // SAFETY: The target and its table are live (type invariant).
        unsafe { raw::dm_table_event(self.ti.as_ref().table) };
    }

    /// Whether the device is being suspended with `--noflush` (I/O may
    /// then be handed back to device-mapper to be issued again after the
    /// resume, instead of failed).
    pub(crate) fn noflush_suspending(&self) -> bool {
        // SAFETY: The target is live (type invariant); the call only reads
        // its mapped device's flags.
        unsafe { raw::dm_noflush_suspending(self.ti.as_ptr()) != 0 }
    }
}

/// A device opened by a target with `dm_get_device`, put on drop.
///
/// # Invariants
///
/// `dev` is a reference obtained by `dm_get_device` for the live target `ti`.
pub(crate) struct TargetDevice {
    dev: NonNull<raw::dm_dev>,
    ti: NonNull<raw::dm_target>,
}

// SAFETY: The device reference may be used and put from any thread.
unsafe impl Send for TargetDevice {}
// SAFETY: Only read-only access is offered.
unsafe impl Sync for TargetDevice {}

impl TargetDevice {
    pub(crate) fn bdev(&self) -> *mut raw::block_device {
        // SAFETY: `dev` is live (type invariant).
        unsafe { self.dev.as_ref().bdev }
    }

    pub(crate) fn as_ptr(&self) -> *mut raw::dm_dev {
        self.dev.as_ptr()
    }

    /// The device as `major:minor`.
    pub(crate) fn name(&self) -> &str {
        // SAFETY: `dev` is live (type invariant); its name is a NUL-terminated
        // array filled by device-mapper.
        let name = unsafe { &self.dev.as_ref().name };
        let bytes: &[u8] = name;
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        core::str::from_utf8(bytes.get(..len).unwrap_or(&[])).unwrap_or("?")
    }

    /// Size of the device in sectors.
    pub(crate) fn size_sectors(&self) -> u64 {
        // SAFETY: An open device's block device is live.
        unsafe { (*self.bdev()).bd_nr_sectors }
    }

    /// Logical block size of the device in bytes.
    pub(crate) fn logical_block_size(&self) -> u32 {
        // SAFETY: An open device's block device is live.
        unsafe { raw::dmrs_bdev_logical_block_size(self.bdev()) }
    }

    /// Whether the device's queue says it is rotational (a seek is costly),
    /// as its `queue/rotational` attribute shows now (it may change).
    pub(crate) fn is_rotational(&self) -> bool {
        // SAFETY: An open device's block device and its queue are live.
        !unsafe { raw::dmrs_bdev_nonrot(self.bdev()) }
    }
}

impl Drop for TargetDevice {
    fn drop(&mut self) {
        // SAFETY: We own this reference of the live target's device.
        unsafe { raw::dm_put_device(self.ti.as_ptr(), self.dev.as_ptr()) };
    }
}

/// The callback device-mapper passes to `iterate_devices`.
///
/// # Invariants
///
/// `f` and `data` are the callout and its data that device-mapper passed to
/// `iterate_devices` for the target `ti`, valid for `'a` (the call).
pub(crate) struct DeviceVisitor<'a> {
    ti: *mut raw::dm_target,
    f: raw::iterate_devices_callout_fn,
    data: *mut c_void,
    _life: core::marker::PhantomData<&'a ()>,
}

impl DeviceVisitor<'_> {
    /// Reports that the target uses `len` sectors of `dev` from `start`;
    /// an error means the iteration is to stop there.
    pub(crate) fn visit(
        &mut self,
        dev: &TargetDevice,
        start: u64,
        len: u64,
    ) -> core::result::Result<(), VisitStop> {
        let ret = match self.f {
            // SAFETY: device-mapper gave us this callout with its data, for
            // this target; `dev` is one of the target's devices.
            Some(f) => unsafe { f(self.ti, dev.as_ptr(), start, len, self.data) },
            None => 0,
        };
        if ret == 0 {
            Ok(())
        } else {
            Err(VisitStop(ret))
        }
    }
}

/// Whether this kernel's device-mapper sends atomic writes to a target type
/// that takes them ([`TargetOps::ATOMIC_WRITES`]): 7.3 does, 6.12 does not.
pub(crate) const ATOMIC_WRITES: bool = super::compat::DM_TARGET_ATOMIC_WRITES.is_some();

/// The registration of a target type; unregisters on drop.
///
/// # Invariants
///
/// `tt` is registered with device-mapper while this exists.
pub(crate) struct Registration<T: TargetOps> {
    tt: Pin<KBox<raw::target_type>>,
    _t: core::marker::PhantomData<T>,
}

// SAFETY: The registration is only created and dropped (module init/exit).
unsafe impl<T: TargetOps> Send for Registration<T> {}
// SAFETY: No method gives access to the inner state.
unsafe impl<T: TargetOps> Sync for Registration<T> {}

impl<T: TargetOps> Registration<T> {
    /// Registers `T` as target type `name` with `version`.
    pub(crate) fn new(
        name: &'static CStr,
        version: [u32; 3],
        module: &'static ThisModule,
    ) -> Result<Self> {
        let features = match super::compat::DM_TARGET_ATOMIC_WRITES {
            Some(bit) if T::ATOMIC_WRITES => bit,
            _ => 0,
        };
        let tt = raw::target_type {
            name: name.as_char_ptr(),
            module: module.as_ptr().cast(),
            version,
            features,
            ctr: Some(ctr_callback::<T>),
            dtr: Some(dtr_callback::<T>),
            map: Some(map_callback::<T>),
            // `if`, not `then_some`: the callback of an operation the target
            // lacks must not even be named (its default body is a build error).
            end_io: if T::HAS_END_IO {
                Some(end_io_callback::<T>)
            } else {
                None
            },
            presuspend: if T::HAS_PRESUSPEND {
                Some(presuspend_callback::<T>)
            } else {
                None
            },
            postsuspend: if T::HAS_POSTSUSPEND {
                Some(postsuspend_callback::<T>)
            } else {
                None
            },
            resume: if T::HAS_RESUME {
                Some(resume_callback::<T>)
            } else {
                None
            },
            status: Some(status_callback::<T>),
            message: if T::HAS_MESSAGE {
                Some(message_callback::<T>)
            } else {
                None
            },
            iterate_devices: if T::HAS_ITERATE_DEVICES {
                Some(iterate_devices_callback::<T>)
            } else {
                None
            },
            ..Default::default()
        };
        let mut tt = KBox::pin(tt, GFP_KERNEL)?;
        // SAFETY: `tt` is pinned and lives until `dm_unregister_target` in
        // drop; all callbacks are valid for `T`.
        let ret = unsafe { raw::dm_register_target(tt.as_mut().get_unchecked_mut()) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(Self {
            tt,
            _t: core::marker::PhantomData,
        })
    }
}

impl<T: TargetOps> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: `tt` is registered (type invariant); no target of this type
        // can exist once the module is being unloaded.
        unsafe { raw::dm_unregister_target(self.tt.as_mut().get_unchecked_mut()) };
    }
}

/// Collects the NUL-terminated argument strings into `&str`s.
///
/// # Safety
///
/// `argv` must point to `argc` valid NUL-terminated strings that outlive `'a`.
unsafe fn collect_args<'a>(argc: c_uint, argv: *mut *mut c_char) -> Result<KVec<&'a str>> {
    let mut args = KVec::with_capacity(argc as usize, GFP_KERNEL)?;
    for i in 0..argc as usize {
        // SAFETY: `i < argc` and the caller guarantees `argv[i]` is a valid
        // NUL-terminated string living long enough.
        let s = unsafe { CStr::from_char_ptr(*argv.add(i)) };
        args.push(s.to_str().map_err(|_| EINVAL)?, GFP_KERNEL)?;
    }
    Ok(args)
}

/// Borrows the state of a constructed target.
///
/// # Safety
///
/// `ti` must be a target of type `T` between constructor and destructor,
/// and `'a` must end before its destructor takes the state back.
unsafe fn state<'a, T: TargetOps>(ti: *mut raw::dm_target) -> TargetBorrow<'a, T> {
    // SAFETY: The constructor stored `TargetState::into_raw` in `private`,
    // and it stays there until the destructor.
    unsafe { TargetState::borrow_raw((*ti).private) }
}

/// Device-mapper's `ctr` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it while loading a table, with `ti` a target of type
/// `T` being constructed (its `private` not set yet) and `argv` holding
/// `argc` NUL-terminated strings, all valid for the duration of the call.
unsafe extern "C" fn ctr_callback<T: TargetOps>(
    ti: *mut raw::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
) -> c_int {
    // SAFETY: device-mapper passes a valid target under construction.
    let ti = unsafe { &mut *ti };
    // SAFETY: device-mapper passes `argc` valid strings alive during the call.
    let args = match unsafe { collect_args(argc, argv) } {
        Ok(a) => a,
        Err(e) => {
            ti.error = c_str!("Invalid argument strings").as_char_ptr().cast_mut();
            return e.to_errno();
        }
    };
    ti.per_io_data_size = core::mem::size_of::<PerBio<T>>() as c_uint;
    let mut setup = TargetSetup { ti };
    match T::ctr(&mut setup, &args) {
        Ok(state) => {
            setup.ti.private = state.into_raw();
            0
        }
        Err(e) => {
            setup.ti.error = e.msg.to_bytes_with_nul().as_ptr().cast_mut().cast();
            e.err.to_errno()
        }
    }
}

/// Device-mapper's `dtr` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it once, when the table holding `ti` is destroyed,
/// for a `T` target whose constructor succeeded; no other callback of the
/// target runs during or after it, and no bio of it is in flight.
unsafe extern "C" fn dtr_callback<T: TargetOps>(ti: *mut raw::dm_target) {
    // SAFETY: `ti` is a constructed `T` target being destroyed; the borrow
    // ends with the call.
    T::dtr(unsafe { state::<T>(ti) });
    // SAFETY: This takes back the owner the constructor stored; device-mapper
    // calls no other callback of the target from here on.
    let owner = unsafe { TargetState::<T>::from_raw((*ti).private) };
    // SAFETY: `ti` is valid; nothing reads `private` after this.
    unsafe { (*ti).private = core::ptr::null_mut() };
    // Waits until no work item, I/O or copy completion holds a reference,
    // then drops the state here, in the destructor's process context, while
    // the target (whose devices the state puts) is still alive.
    drop(owner);
}

/// Device-mapper's `map` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it under its SRCU read lock of the live table, with
/// `ti` a constructed `T` target and `bio` a clone bio it hands to the
/// target, with `per_io_data_size` bytes of per-bio data reserved.
unsafe extern "C" fn map_callback<T: TargetOps>(
    ti: *mut raw::dm_target,
    bio: *mut raw::bio,
) -> c_int {
    let Some(bio) = NonNull::new(bio) else {
        return raw::DM_MAPIO_KILL as c_int;
    };
    // SAFETY: `ti` is a constructed `T` target.
    let this = unsafe { state::<T>(ti) };
    // SAFETY: device-mapper reserved `per_io_data_size` bytes for this bio.
    // INVARIANT: the state of the target mapping the bio, nothing recorded.
    unsafe {
        per_bio::<T>(bio).write(PerBio {
            target: this.as_raw(),
            record: super::bio::BioRecord::unset(),
            data: T::BioData::default(),
        })
    };
    // SAFETY: device-mapper hands the bio to the target, which now owns its
    // completion; its per-bio data was just initialised.
    let bio = unsafe { DmBio::from_raw(bio) };
    match T::map(this, bio) {
        MapResult::Remapped(b) => {
            b.into_raw();
            raw::DM_MAPIO_REMAPPED as c_int
        }
        MapResult::Submitted => raw::DM_MAPIO_SUBMITTED as c_int,
        MapResult::Kill(b) => {
            b.into_raw();
            raw::DM_MAPIO_KILL as c_int
        }
    }
}

/// Device-mapper's `end_io` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it when a bio the target remapped (or submitted with
/// `submit_bio_noacct`) completes, with `ti` the constructed `T` target that
/// mapped it and `error` pointing to its completion status; the bio's dm
/// I/O stays pending, so the target stays alive, until the call returns.
unsafe extern "C" fn end_io_callback<T: TargetOps>(
    ti: *mut raw::dm_target,
    bio: *mut raw::bio,
    error: *mut raw::blk_status_t,
) -> c_int {
    let (Some(ptr), false) = (NonNull::new(bio), error.is_null()) else {
        return raw::DM_ENDIO_DONE as c_int;
    };
    // SAFETY: `ti` is a constructed `T` target.
    let this = unsafe { state::<T>(ti) };
    // INVARIANT: device-mapper passes a completing bio of this target and
    // its status; it owns the completion until the target takes it.
    let mut eb = EndIoBio {
        ptr,
        // SAFETY: device-mapper passes a valid status to update.
        status: unsafe { &mut *error },
        target: this,
        taken: false,
        keep: None,
    };
    T::end_io(this, &mut eb);
    if eb.taken {
        // The target finishes the bio (and `eb.keep` is dropped only now,
        // after the last use of `this`).
        raw::DM_ENDIO_INCOMPLETE as c_int
    } else {
        raw::DM_ENDIO_DONE as c_int
    }
}

/// Device-mapper's `presuspend` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it with `ti` a constructed `T` target, under the
/// device's suspend lock, before it waits for the target's I/O to drain.
unsafe extern "C" fn presuspend_callback<T: TargetOps>(ti: *mut raw::dm_target) {
    // SAFETY: `ti` is a constructed `T` target.
    T::presuspend(unsafe { state::<T>(ti) });
}

/// Device-mapper's `postsuspend` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it with `ti` a constructed `T` target, under the
/// device's suspend lock, after the target's I/O has drained.
unsafe extern "C" fn postsuspend_callback<T: TargetOps>(ti: *mut raw::dm_target) {
    // SAFETY: `ti` is a constructed `T` target.
    T::postsuspend(unsafe { state::<T>(ti) });
}

/// Device-mapper's `resume` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it with `ti` a constructed `T` target, under the
/// device's suspend lock, when the table is activated or resumed.
unsafe extern "C" fn resume_callback<T: TargetOps>(ti: *mut raw::dm_target) {
    // SAFETY: `ti` is a constructed `T` target.
    T::resume(unsafe { state::<T>(ti) });
}

/// Wraps device-mapper's `(result, maxlen)` output buffer.
///
/// # Safety
///
/// `result` must be valid for `maxlen` bytes of writes for `'a`.
unsafe fn out_buffer<'a>(result: *mut c_char, maxlen: c_uint) -> Option<BoundedWriter<'a>> {
    if result.is_null() || maxlen == 0 {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    let buf = unsafe { core::slice::from_raw_parts_mut(result.cast::<u8>(), maxlen as usize) };
    Some(BoundedWriter::new(buf))
}

/// Device-mapper's `status` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it with `ti` a constructed `T` target of a table it
/// holds a reference on, and `result` a buffer of `maxlen` bytes.
unsafe extern "C" fn status_callback<T: TargetOps>(
    ti: *mut raw::dm_target,
    ty: raw::status_type_t,
    _flags: c_uint,
    result: *mut c_char,
    maxlen: c_uint,
) {
    let ty = match ty {
        raw::status_type_t_STATUSTYPE_INFO => StatusType::Info,
        raw::status_type_t_STATUSTYPE_TABLE => StatusType::Table,
        _ => StatusType::Ima,
    };
    // SAFETY: device-mapper gives a buffer of `maxlen` bytes.
    let Some(mut out) = (unsafe { out_buffer(result, maxlen) }) else {
        return;
    };
    // SAFETY: `ti` is a constructed `T` target.
    T::status(unsafe { state::<T>(ti) }, ty, &mut out);
    out.finish_nul();
}

/// Device-mapper's `message` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it with `ti` a constructed `T` target of the live
/// table it holds, `argv` holding `argc` NUL-terminated strings and
/// `result` a buffer of `maxlen` bytes, all valid during the call.
unsafe extern "C" fn message_callback<T: TargetOps>(
    ti: *mut raw::dm_target,
    argc: c_uint,
    argv: *mut *mut c_char,
    result: *mut c_char,
    maxlen: c_uint,
) -> c_int {
    // SAFETY: device-mapper passes `argc` valid strings alive during the call.
    let args = match unsafe { collect_args(argc, argv) } {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: device-mapper gives a buffer of `maxlen` bytes.
    let Some(mut out) = (unsafe { out_buffer(result, maxlen) }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `ti` is a constructed `T` target.
    let ret = T::message(unsafe { state::<T>(ti) }, &args, &mut out);
    out.finish_nul();
    match ret {
        // device-mapper returns the result text to userspace when the
        // message handler returns 1.
        Ok(()) if !out.is_empty() => 1,
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Device-mapper's `iterate_devices` callback for `T`.
///
/// # Safety
///
/// Device-mapper calls it with `ti` a constructed `T` target, and `f` with
/// `data` a callout it expects to be called for the target's devices
/// during the call.
unsafe extern "C" fn iterate_devices_callback<T: TargetOps>(
    ti: *mut raw::dm_target,
    f: raw::iterate_devices_callout_fn,
    data: *mut c_void,
) -> c_int {
    // INVARIANT: device-mapper passes the callout and data for this call.
    let mut visitor = DeviceVisitor {
        ti,
        f,
        data,
        _life: core::marker::PhantomData,
    };
    // SAFETY: `ti` is a constructed `T` target.
    match T::iterate_devices(unsafe { state::<T>(ti) }, &mut visitor) {
        Ok(()) => 0,
        Err(VisitStop(ret)) => ret,
    }
}
