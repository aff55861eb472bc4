#!/usr/bin/env python3
"""Write, read, break and remove NVIDIA (nForce) RAID1 metadata on disk images.

The format dmraid reads ("nvidia" handler): 120 bytes, 30 little-endian u32
words, in the second-to-last 512-byte sector of each member disk; the data
area is sectors [0, N-2). The words sum to 0 mod 2^32 (the chksum word makes
them so). Both members carry the same 4-word signature (the set's identity)
and their unitNumber (0, 1) orders the legs. raidJobCode says whether the set
needs a resync: 0 idle; 2 init, 3 rebuild, 4 upgrade, 5 sync. (Debian 12's
dmraid 1.0.0.rc16 ignores it: its nvidia state table starts with the value 0,
which ends its lookup at once, so every member is "ok" and a complete set
gets a "nosync" mirror. It loads "sync" for an inconsistent set, e.g. one that
declares more volumes, totalVolumes, than it has.) dmraid names the set
"nvidia_" + the 8 hex digits of the sum of the signature words, digits 0-9
written as letters a-j.

  nvidia-meta.py write [--job sync|nosync|CODE] [--signature HEX32x4]
                       [--stripe-sectors N] [--total-volumes N] DISK0 DISK1
  nvidia-meta.py show DISK...           decode, verify, print the set name
  nvidia-meta.py break DISK             corrupt the checksum (dmraid rejects it)
  nvidia-meta.py remove DISK            zero the metadata sector
  nvidia-meta.py name [--signature ...] print the set name dmraid will use
  nvidia-meta.py --self-test            unit tests of the encoder/decoder

Disks are image files (or block devices); their size must be a multiple of
512 bytes and at least 64 KiB. Nothing but the metadata sector is written.
"""

import argparse
import contextlib
import io
import os
import struct
import sys
import tempfile

SECTOR = 512
META_LEN = 120  # 30 words
WORDS = META_LEN // 4
VENDOR = b"NVIDIA"
NV_VERSION = 100
LEVEL_RAID1 = 0x81
FLAG_ERROR = 0x2
JOB_CODES = {"nosync": 0, "sync": 3}
# sync-requesting job codes -> dmraid status (for `show`)
JOB_NAMES = {0: "idle (nosync)", 2: "init (sync)", 3: "rebuild (sync)",
             4: "upgrade (sync)", 5: "sync (sync)"}
DEFAULT_SIGNATURE = (0x444D5253, 0x6D697272, 0x6F722D72, 0x73000001)

# field: (offset, struct format) -- byte offsets in the 120-byte block
FIELDS = {
    "vendor": (0x00, "8s"),
    "size": (0x08, "<I"),
    "chksum": (0x0C, "<I"),
    "version": (0x10, "<H"),
    "unitNumber": (0x12, "B"),
    "reserved": (0x13, "B"),
    "capacity": (0x14, "<I"),
    "sectorSize": (0x18, "<I"),
    "productID": (0x1C, "16s"),
    "productRevision": (0x2C, "4s"),
    "unitFlags": (0x30, "<I"),
    "array.version": (0x34, "<I"),
    "array.signature": (0x38, "<4I"),
    "array.raidJobCode": (0x48, "B"),
    "array.stripeWidth": (0x49, "B"),
    "array.totalVolumes": (0x4A, "B"),
    "array.originalWidth": (0x4B, "B"),
    "array.raidLevel": (0x4C, "<I"),
    "array.stripeBlockSize": (0x50, "<I"),
    "array.stripeBlockByteSize": (0x54, "<I"),
    "array.stripeBlockPower": (0x58, "<I"),
    "array.stripeMask": (0x5C, "<I"),
    "array.stripeSize": (0x60, "<I"),
    "array.stripeByteSize": (0x64, "<I"),
    "array.raidJobMark": (0x68, "<I"),
    "array.originalLevel": (0x6C, "<I"),
    "array.originalCapacity": (0x70, "<I"),
    "array.flags": (0x74, "<I"),
}


class MetaError(Exception):
    pass


def word_sum(block):
    return sum(struct.unpack("<%dI" % WORDS, block[:META_LEN])) & 0xFFFFFFFF


def set_field(buf, name, value):
    off, fmt = FIELDS[name]
    if isinstance(value, tuple):
        struct.pack_into(fmt, buf, off, *value)
    else:
        struct.pack_into(fmt, buf, off, value)


def get_field(block, name):
    off, fmt = FIELDS[name]
    v = struct.unpack_from(fmt, block, off)
    return v if len(v) > 1 else v[0]


def seal(buf):
    """Set chksum so that the 30 words sum to 0 mod 2^32."""
    set_field(buf, "chksum", 0)
    set_field(buf, "chksum", (-word_sum(buf)) & 0xFFFFFFFF)


def encode(unit, disk_sectors, job_code, signature, stripe_sectors=128, total_volumes=2):
    if disk_sectors < 128:
        raise MetaError("disk too small: %d sectors" % disk_sectors)
    if stripe_sectors <= 0 or stripe_sectors & (stripe_sectors - 1):
        raise MetaError("stripe size must be a power of two")
    data = disk_sectors - 2
    if data > 0xFFFFFFFF:
        raise MetaError("disk too large for 32-bit capacity")
    buf = bytearray(META_LEN)
    set_field(buf, "vendor", VENDOR)
    set_field(buf, "size", WORDS)
    set_field(buf, "version", NV_VERSION)
    set_field(buf, "unitNumber", unit)
    set_field(buf, "capacity", data)
    set_field(buf, "sectorSize", SECTOR)
    set_field(buf, "productID", b"dm-mirror-rs    ")
    set_field(buf, "productRevision", b"1.0 ")
    set_field(buf, "array.version", 0x640000 + 0x44)  # 0x640000 + sizeof(array)
    set_field(buf, "array.signature", tuple(signature))
    set_field(buf, "array.raidJobCode", job_code)
    set_field(buf, "array.stripeWidth", 1)
    set_field(buf, "array.totalVolumes", total_volumes)
    set_field(buf, "array.originalWidth", 1)
    set_field(buf, "array.raidLevel", LEVEL_RAID1)
    set_field(buf, "array.stripeBlockSize", stripe_sectors)
    set_field(buf, "array.stripeBlockByteSize", stripe_sectors * SECTOR)
    set_field(buf, "array.stripeBlockPower", stripe_sectors.bit_length() - 1)
    set_field(buf, "array.stripeMask", stripe_sectors - 1)
    set_field(buf, "array.stripeSize", stripe_sectors)  # * stripeWidth (1)
    set_field(buf, "array.stripeByteSize", stripe_sectors * SECTOR)
    set_field(buf, "array.originalLevel", LEVEL_RAID1)
    set_field(buf, "array.originalCapacity", data)
    set_field(buf, "array.flags", 0)
    seal(buf)
    return bytes(buf)


def decode(block):
    """Fields of a metadata block; raises MetaError when dmraid would not take it."""
    if len(block) < META_LEN:
        raise MetaError("short metadata block")
    if block[:6] != VENDOR:
        raise MetaError("no NVIDIA metadata (vendor %r)" % block[:8])
    f = {name: get_field(block, name) for name in FIELDS}
    if f["size"] != WORDS:
        raise MetaError("size %d words, want %d" % (f["size"], WORDS))
    if word_sum(block) != 0:
        raise MetaError("bad checksum: words sum to 0x%08x" % word_sum(block))
    return f


def set_name(signature):
    s = "%08x" % (sum(signature) & 0xFFFFFFFF)
    return "nvidia_" + "".join(chr(ord("a") + int(c)) if c.isdigit() else c for c in s)


def disk_sectors(path):
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
    if size % SECTOR:
        raise MetaError("%s: size %d is not a multiple of 512" % (path, size))
    if size < 64 * 1024:
        raise MetaError("%s: too small (%d bytes)" % (path, size))
    return size // SECTOR


def meta_offset(path):
    return (disk_sectors(path) - 2) * SECTOR


def write_sector(path, data):
    off = meta_offset(path)
    sector = data + bytes(SECTOR - len(data))
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(sector)
        f.flush()
        os.fsync(f.fileno())


def read_block(path):
    with open(path, "rb") as f:
        f.seek(meta_offset(path))
        return f.read(SECTOR)


def parse_job(s):
    if s in JOB_CODES:
        return JOB_CODES[s]
    code = int(s, 0)
    if code not in JOB_NAMES:
        raise MetaError("unknown job code %d (0, 2, 3, 4, 5)" % code)
    return code


def parse_signature(s):
    if s is None:
        return DEFAULT_SIGNATURE
    h = s.lower().removeprefix("0x")
    if len(h) != 32 or any(c not in "0123456789abcdef" for c in h):
        raise MetaError("signature must be 32 hex digits (4 u32 words)")
    return tuple(int(h[i:i + 8], 16) for i in range(0, 32, 8))


def cmd_write(a):
    sig = parse_signature(a.signature)
    job = parse_job(a.job)
    sizes = [disk_sectors(d) for d in a.disks]
    for unit, (disk, n) in enumerate(zip(a.disks, sizes)):
        write_sector(disk, encode(unit, n, job, sig, a.stripe_sectors, a.total_volumes))
    print("%s: %s on %s (job %d = %s, %d data sectors)" % (
        sys.argv[0], set_name(sig), " ".join(a.disks), job, JOB_NAMES[job],
        min(sizes) - 2))


def cmd_show(a):
    rc = 0
    for d in a.disks:
        try:
            f = decode(read_block(d))
        except MetaError as e:
            print("%s: %s" % (d, e))
            rc = 1
            continue
        print("%s: %s unit %d of %d, level 0x%x, job %d = %s, capacity %d, flags 0x%x" % (
            d, set_name(f["array.signature"]), f["unitNumber"],
            f["array.totalVolumes"], f["array.raidLevel"],
            f["array.raidJobCode"], JOB_NAMES.get(f["array.raidJobCode"], "?"),
            f["capacity"], f["array.flags"]))
    return rc


def cmd_break(a):
    block = bytearray(read_block(a.disk))
    decode(block)  # only break valid metadata
    set_field(block, "chksum", (get_field(block, "chksum") + 1) & 0xFFFFFFFF)
    write_sector(a.disk, bytes(block[:META_LEN]))
    print("%s: checksum broken" % a.disk)


def cmd_remove(a):
    write_sector(a.disk, b"")
    print("%s: metadata sector zeroed" % a.disk)


def self_test():
    with contextlib.redirect_stdout(io.StringIO()):
        fails = _self_test()
    for f in fails:
        print("self-test FAILED: %s" % f)
    print("nvidia-meta self-test: %d failed" % len(fails))
    return 1 if fails else 0


def _self_test():
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)

    sig = (0x01234567, 0x89ABCDEF, 0xFFFFFFFF, 0x00000010)
    for unit in (0, 1):
        for job in (0, 2, 3, 4, 5):
            b = encode(unit, 262144, job, sig, 128)
            expect(len(b) == 120, "length 120")
            expect(word_sum(b) == 0, "words sum to 0 (unit %d job %d)" % (unit, job))
            f = decode(b)
            expect(f["unitNumber"] == unit, "unit round trip")
            expect(f["array.raidJobCode"] == job, "job round trip")
            expect(f["array.signature"] == sig, "signature round trip")
            expect(f["capacity"] == 262142, "capacity N-2")
    b = encode(1, 262144, 3, sig)
    # fixed offsets the dmraid handler reads
    expect(b[0:6] == b"NVIDIA", "vendor at 0")
    expect(struct.unpack_from("<I", b, 0x08)[0] == 30, "size 30 at 0x08")
    expect(b[0x12] == 1, "unitNumber at 0x12")
    expect(struct.unpack_from("<4I", b, 0x38) == sig, "signature at 0x38")
    expect(b[0x48] == 3 and b[0x49] == 1 and b[0x4A] == 2, "job/width/volumes at 0x48..0x4A")
    expect(struct.unpack_from("<I", b, 0x4C)[0] == 0x81, "raidLevel 0x81 at 0x4C")
    expect(struct.unpack_from("<I", b, 0x74)[0] & FLAG_ERROR == 0, "flags at 0x74, no error bit")
    # any one-bit change is detected
    for bit in (0, 77, 8 * 0x48, 8 * 0x74 + 1, 959):
        c = bytearray(b)
        c[bit // 8] ^= 1 << (bit % 8)
        try:
            decode(c)
            expect(False, "flipped bit %d not detected" % bit)
        except MetaError:
            pass
    # the checksum wraps mod 2^32
    big = (0xFFFFFFFF,) * 4
    expect(word_sum(encode(0, 1 << 31, 0, big)) == 0, "checksum with wrapping sums")
    # set names: digits become letters
    expect(encode(0, 4096, 0, sig, 128, 3)[0x4A] == 3, "totalVolumes option")
    expect(word_sum(encode(0, 4096, 0, sig, 128, 3)) == 0, "checksum with 3 volumes")
    expect(set_name((0, 0, 0, 0)) == "nvidia_aaaaaaaa", "name of zero signature")
    expect(set_name((0x12345678, 0, 0, 0x9ABCDEF0 - 0x12345678)) == "nvidia_jabcdefa",
           "name maps digits to a-j")
    expect(set_name((0xFFFFFFFF, 2, 0, 0)) == "nvidia_aaaaaaab", "name sum wraps")
    expect(parse_signature("0x" + "00000001" * 4) == (1, 1, 1, 1), "parse signature")
    # write/show/break/remove on real files
    with tempfile.TemporaryDirectory() as d:
        disks = [os.path.join(d, "d%d.img" % i) for i in (0, 1)]
        for p in disks:
            with open(p, "wb") as f:
                f.truncate(1 << 20)
        ns = argparse.Namespace(disks=disks, job="sync", signature=None, stripe_sectors=128,
                                total_volumes=2)
        cmd_write(ns)
        for unit, p in enumerate(disks):
            with open(p, "rb") as f:
                raw = f.read()
            expect(len(raw) == 1 << 20, "size unchanged")
            off = (1 << 20) - 1024
            expect(raw[:off] == bytes(off), "data area untouched")
            expect(raw[off + 120:] == bytes(len(raw) - off - 120), "rest of the disk zero")
            f = decode(raw[off:off + 512])
            expect(f["unitNumber"] == unit and f["array.raidJobCode"] == 3, "written fields")
        cmd_break(argparse.Namespace(disk=disks[1]))
        try:
            decode(read_block(disks[1]))
            expect(False, "broken metadata still decodes")
        except MetaError as e:
            expect("checksum" in str(e), "break gives a checksum error")
        cmd_remove(argparse.Namespace(disk=disks[0]))
        expect(read_block(disks[0]) == bytes(512), "remove zeroes the sector")
    return fails


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write RAID1 metadata onto two disks")
    w.add_argument("--job", default="sync",
                   help="sync (job code 3), nosync (0), or a numeric job code")
    w.add_argument("--signature", help="32 hex digits (default: a fixed one)")
    w.add_argument("--stripe-sectors", type=int, default=128)
    w.add_argument("--total-volumes", type=int, default=2,
                   help="volumes the set declares (3: one missing, dmraid resyncs the two)")
    w.add_argument("disks", nargs=2, metavar="DISK")
    s = sub.add_parser("show", help="decode and verify")
    s.add_argument("disks", nargs="+", metavar="DISK")
    b = sub.add_parser("break", help="corrupt one disk's checksum")
    b.add_argument("disk")
    r = sub.add_parser("remove", help="zero one disk's metadata sector")
    r.add_argument("disk")
    n = sub.add_parser("name", help="print the dmraid set name")
    n.add_argument("--signature")
    a = p.parse_args()
    try:
        if a.cmd == "write":
            cmd_write(a)
        elif a.cmd == "show":
            return cmd_show(a)
        elif a.cmd == "break":
            cmd_break(a)
        elif a.cmd == "remove":
            cmd_remove(a)
        elif a.cmd == "name":
            print(set_name(parse_signature(a.signature)))
    except (MetaError, OSError) as e:
        print("nvidia-meta: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
