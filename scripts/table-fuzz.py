#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Case generator of the differential table fuzz (tests/40-tablefuzz.sh).

    scripts/table-fuzz.py [--seed N] [--count N] [-o FILE]
    scripts/table-fuzz.py --seed N --count N --stats     (classes, distinct tables)

Writes COUNT distinct `mirror` tables, valid and broken, deterministically
from SEED (the same seed and a larger count give the same cases first). The
guest creates each one with the C dm-mirror and with ours in one boot and
compares every accept/reject decision, `dmsetup table` line and status line.

Output: comment lines (`#`), then one case per line, tab separated:

    ID  CLASS  EXPECT  MODEL  NOTE  TABLE

  CLASS   how the case was made (valid, tokmut, numeric, ...; see CLASSES)
  EXPECT  same   C and ours must agree (decision, table, masked status)
          cwrap  C is wrong (see C_WRONG): C must accept, ours must reject
          strict C is wrong (see C_WRONG) somewhere in this table: ours must
                 reject, C may accept or reject
  MODEL   A or R: what this script's model of the C constructor and of
          device-mapper's checks predicts C does (the guest checks it, so a
          wrong model, e.g. a "valid" case C rejects, shows up)
  NOTE    what was changed, for the diagnostics
  TABLE   the dmsetup table line, with placeholders the guest replaces:
          @{LA} @{LB} @{LC} @{LS} @{L2} @{L3} @{LZ}   device sizes in sectors,
          also @{LA-8}, @{LZ+1} (one constant added or subtracted);
          @{MA} @{MB} @{MC} @{MS} @{M2} @{M3} @{MZ}   their major:minor

Devices (the guest creates the dm ones before the first case):
  A /dev/vda  B /dev/vdb (256 MiB)  C /dev/vdc (16 MiB)
  S /dev/mapper/dmrsf_s   linear, 4096 sectors of vdc
  2 /dev/mapper/dmrsf_2   linear, 2 sectors (too small for any disk log)
  3 /dev/mapper/dmrsf_3   linear, 3 sectors (a disk log of <= 4096 regions)
  Z /dev/mapper/dmrsf_z   zero target, 2^33 sectors (4 TiB, writes dropped)
The sizes assumed here are in the header (`# sizes`); the guest checks that
the real ones are the same.
"""

import argparse
import random
import re
import sys

VERSION = 1
U32 = 1 << 32
U64 = 1 << 64

SIZES = {"LA": 524288, "LB": 524288, "LC": 32768, "LS": 4096, "L2": 2, "L3": 3, "LZ": 1 << 33}
# key: (path, major:minor placeholder, size key)
DEVS = {
    "A": ("/dev/vda", "@{MA}", "LA"),
    "B": ("/dev/vdb", "@{MB}", "LB"),
    "C": ("/dev/vdc", "@{MC}", "LC"),
    "S": ("/dev/mapper/dmrsf_s", "@{MS}", "LS"),
    "2": ("/dev/mapper/dmrsf_2", "@{M2}", "L2"),
    "3": ("/dev/mapper/dmrsf_3", "@{M3}", "L3"),
    "Z": ("/dev/mapper/dmrsf_z", "@{MZ}", "LZ"),
}
TOKEN_DEV = {}
for _k, (_p, _m, _s) in DEVS.items():
    TOKEN_DEV[_p] = _k
    TOKEN_DEV[_m] = _k
# names that are no usable block device (lookup fails in both targets)
BAD_DEVS = ["/dev/nonexistent", "/dev/vdz", "/dev/vda1", "/dev/null", "/dev/mapper/dmrsf_none",
            "0:0", "4095:1048575", "4096:0", "/dev/vda/", "/dev/mapper/control"]

# Where the C target is wrong (drivers/md/dm-raid1.c, dm-log.c in 6.12).
# Ours rejects these tables; the guest asserts that ours does.
C_WRONG = {
    "u32-wrap": "C reads the log argument count, region size, mirror count and feature "
                "count with the kernel's sscanf %u, which neither detects overflow nor "
                "range-checks: a decimal value >= 2^32 is taken modulo 2^32 (4294967298 "
                "mirrors = 2, region size 4294968320 = 1024). Ours rejects numbers that do "
                "not fit in 32 bits.",
    "u64-wrap": "C reads leg offsets with sscanf %llu, which wraps modulo 2^64 without an "
                "error: offset 18446744073709551616 is used as offset 0, 2^64+8 as 8. Ours "
                "rejects offsets that do not fit in 64 bits.",
}

MAX_REGIONS = 1 << 22       # bitsets of at most 512 KiB each (guest memory, time)
MAX_SYNC_LEN = 4096         # accepted tables that resync copy at most 2 MiB in at
MAX_SYNC_REGIONS = 32       # most 32 regions: the guest keeps 10 at a time and
                            # TCG copies slowly (a region at a time, a disk log
                            # write for each)
LLONG_MAX_SECTORS = ((1 << 63) - 1) >> 9  # device-mapper's limit on start + len

CLASSES = [  # (name, weight)
    ("valid", 20), ("cwrap", 5), ("tokmut", 14), ("numeric", 12), ("counts", 8),
    ("small", 7), ("offset", 7), ("features", 6), ("trailing", 4), ("devname", 6),
    ("logargs", 6), ("length", 5),
]

# ------------------------------------------------------------------ model ----
PLACEHOLDER = re.compile(r"@\{([A-Z0-9]+)([+-][0-9]+)?\}")


def nominal(tok):
    """A token with the size placeholders replaced by the nominal sizes
    (major:minor placeholders are kept: TOKEN_DEV knows them)."""
    def repl(m):
        name, delta = m.group(1), m.group(2)
        if name not in SIZES:
            return m.group(0)
        return str(SIZES[name] + int(delta or 0))
    return PLACEHOLDER.sub(repl, tok)


# How the guest kernel's sscanf treats a number of 2^64 or more: 6.12 wraps
# it modulo 2^64; later kernels (7.3: lib/kstrtox.c _parse_integer_limit
# sets ULLONG_MAX on overflow) saturate it at 2^64 - 1 (--overflow).
OVERFLOW = "wrap"


def c_number(tok, bits):
    """The kernel's sscanf "%u%c"/"%llu%c" == 1 on one table word: ASCII digits
    only, the value (saturated at 2^64 - 1 where OVERFLOW says so) taken
    modulo 2^bits. Returns (value or None, wrapped)."""
    if not tok or any(c not in "0123456789" for c in tok):
        return None, False
    v = int(tok)
    if OVERFLOW == "saturate" and v >= 1 << 64:
        return ((1 << 64) - 1) % (1 << bits), True
    return v % (1 << bits), v >= (1 << bits)


def log_buf_ok(regions, dev_sectors):
    """dm-log's disk log size check: header + bitset rounded up to the logical
    block (512 bytes here) must fit on the log device."""
    bitset = (regions + 63) // 64 * 8
    buf = (1024 + bitset + 511) // 512 * 512
    return buf <= dev_sectors * 512


class Model:
    """What the C target (with device-mapper's own checks) does with a table."""

    def __init__(self, line):
        self.wrap = None       # first C_WRONG key hit in the order C parses
        self.accept = False
        self.why = ""
        self.regions = None    # region count when C got as far as allocating the log
        self.region_size = None
        self.sync = None
        self.run(line)

    def num(self, tok, bits, key):
        v, wrapped = c_number(tok, bits)
        if v is not None and wrapped and self.wrap is None:
            self.wrap = key
        return v

    def reject(self, why):
        self.why = why
        return False

    def run(self, line):
        words = [nominal(w) for w in line.split()]
        # dmsetup: "<start> <len> <type> <params>"; device-mapper's add_target
        start, length = int(words[0]), int(words[1])
        self.length = length
        args = words[3:]
        if start != 0:
            return self.reject("Gap in table")
        if length == 0:
            return self.reject("zero-length target")
        if length > LLONG_MAX_SECTORS:
            return self.reject("too large device")
        # create_dirty_log
        argc = len(args)
        if argc < 2:
            return self.reject("Insufficient mirror log arguments")
        pc = self.num(args[1], 32, "u32-wrap")
        if pc is None:
            return self.reject("Invalid mirror log argument count")
        if pc > argc - 2:
            return self.reject("Insufficient mirror log arguments")
        params = args[2:2 + pc]
        rest = args[2 + pc:]
        logdev = None
        if args[0] == "core":
            if not 1 <= pc <= 2:
                return self.reject("core log argument count")
        elif args[0] == "disk":
            if not 2 <= pc <= 3:
                return self.reject("disk log argument count")
            logdev = TOKEN_DEV.get(params[0])
            if logdev is None:
                return self.reject("log device lookup")
            params = params[1:]
        else:
            return self.reject("unknown log type")
        # create_log_context: sync word, then region size, then region count
        sync = params[1] if len(params) > 1 else None
        if sync is not None and sync not in ("sync", "nosync"):
            return self.reject("sync argument")
        rs = self.num(params[0], 32, "u32-wrap")
        if rs is None or rs < 2 or rs > length or rs & (rs - 1):
            return self.reject("invalid region size")
        regions = -(-length // rs)
        if regions > U32 - 1:
            return self.reject("region count exceeds limit")
        self.regions, self.region_size, self.sync = regions, rs, sync
        if logdev is not None and not log_buf_ok(regions, SIZES[DEVS[logdev][2]]):
            return self.reject("log device too small")
        # mirror_ctr
        if not rest:
            return self.reject("Invalid number of mirrors")
        nm = self.num(rest[0], 32, "u32-wrap")
        if nm is None or nm < 2 or nm > 9:
            return self.reject("Invalid number of mirrors")
        rest = rest[1:]
        if len(rest) < 2 * nm:
            return self.reject("Too few mirror arguments")
        legs = []
        for i in range(nm):
            off = self.num(rest[2 * i + 1], 64, "u64-wrap")
            if off is None:
                return self.reject("Invalid offset")
            dev = TOKEN_DEV.get(rest[2 * i])
            if dev is None:
                return self.reject("Device lookup failure")
            legs.append((dev, off))
        rest = rest[2 * nm:]
        if rest:
            fc = self.num(rest[0], 32, "u32-wrap")
            if fc is None:
                return self.reject("Invalid number of features")
            if fc > len(rest) - 1:
                return self.reject("Not enough arguments to support feature count")
            feats = rest[1:1 + fc]
            if any(f not in ("handle_errors", "keep_log") for f in feats):
                return self.reject("Unrecognised feature requested")
            if "keep_log" in feats and "handle_errors" not in feats:
                return self.reject("keep_log feature requires the handle_errors feature")
            rest = rest[1 + fc:]
        if rest:
            return self.reject("Too many mirror arguments")
        # resume: device-mapper checks each leg's area (device_area_is_invalid);
        # the log device is no part of the mapped area
        for dev, off in legs:
            size = SIZES[DEVS[dev][2]]
            if off >= size or off + length > size:
                return self.reject("leg too small")
        self.accept = True
        return True

    def safe(self):
        """False for tables that would make C allocate huge bitsets or
        resync much (the guest is small and slow)."""
        if self.regions is not None and self.regions > MAX_REGIONS:
            return False
        if self.accept and self.sync != "nosync" and (
                self.length > MAX_SYNC_LEN or self.regions > MAX_SYNC_REGIONS):
            return False
        return True


# -------------------------------------------------------------- generator ----
class Table:
    """A table as parts, so a class can change one part."""

    def __init__(self):
        self.length = "0"
        self.log = "core"
        self.logdev = None      # token
        self.region = "1024"
        self.sync = None
        self.count = None       # log arg count token, None: the right one
        self.mcount = None      # mirror count token, None: the right one
        self.legs = []          # [dev token, offset token]
        self.features = None    # None: no feature part, else [count token, words...]

    def copy(self):
        t = Table()
        t.__dict__.update(self.__dict__)
        t.legs = [list(leg) for leg in self.legs]
        t.features = None if self.features is None else list(self.features)
        return t

    def log_tokens(self):
        params = ([self.logdev] if self.log == "disk" else []) + [self.region]
        if self.sync is not None:
            params.append(self.sync)
        count = self.count if self.count is not None else str(len(params))
        return [self.log, count] + params

    def tokens(self):
        toks = self.log_tokens()
        toks.append(self.mcount if self.mcount is not None else str(len(self.legs)))
        for dev, off in self.legs:
            toks += [dev, off]
        if self.features is not None:
            toks += self.features
        return toks

    def line(self, toks=None):
        return "0 %s mirror %s" % (self.length, " ".join(self.tokens() if toks is None else toks))


def sym(name, value):
    """SIZE +/- constant as a placeholder: the size key NAME plus (value - size)."""
    d = value - SIZES[name]
    return "@{%s}" % name if d == 0 else "@{%s%+d}" % (name, d)


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, seq):
        return self.r.choice(seq)

    def weighted(self, pairs):
        total = sum(w for _, w in pairs)
        x = self.r.randrange(total)
        for v, w in pairs:
            if x < w:
                return v
            x -= w
        raise AssertionError

    def devtok(self, key):
        path, mm, _ = DEVS[key]
        return mm if self.r.random() < 0.3 else path

    def powers(self, lo, hi):
        return [1 << k for k in range(1, 32) if lo <= (1 << k) <= hi]

    # a valid table (the model must accept it)
    def valid(self):
        r = self.r
        t = Table()
        n = self.weighted([(2, 40), (3, 20), (4, 8), (5, 5), (6, 4), (7, 4), (8, 4), (9, 6)])
        kind = self.weighted([("big", 70), ("withc", 12), ("withs", 8), ("zero", 10)])
        if kind == "big":
            keys = [self.weighted([("A", 5), ("B", 5)]) for _ in range(n)]
        elif kind == "withc":
            keys = [self.weighted([("A", 3), ("B", 3), ("C", 2)]) for _ in range(n)]
            keys[r.randrange(n)] = "C"
        elif kind == "withs":
            keys = [self.weighted([("A", 2), ("C", 2), ("S", 3)]) for _ in range(n)]
            keys[r.randrange(n)] = "S"
        else:
            keys = [self.weighted([("Z", 6), ("A", 1)]) for _ in range(n)]
            if "A" in keys and r.random() < 0.5:
                keys = ["Z"] * n
        cap = min(SIZES[DEVS[k][2]] for k in keys)
        t.sync = self.weighted([(None, 40), ("sync", 25), ("nosync", 35)])
        if t.sync != "nosync":
            cap = min(cap, MAX_SYNC_LEN)
        # target length
        how = self.weighted([("full", 30), ("pow", 20), ("any", 35), ("small", 15)])
        if how == "full":
            length = cap
        elif how == "pow":
            length = self.pick(self.powers(2, cap))
        elif how == "small":
            length = r.randint(2, min(cap, 4096))
        else:
            length = r.randint(2, cap)
        if cap >= 1 << 30 and r.random() < 0.5:
            length = self.pick([cap, 1 << 32, (1 << 32) + 7, r.randint(1 << 30, cap)])
        full = all(SIZES[DEVS[k][2]] == length for k in keys)
        if length == SIZES["LA"] and r.random() < 0.7:
            t.length = "@{LA}"
        elif full and r.random() < 0.7:
            t.length = sym(DEVS[keys[0]][2], length)
        else:
            t.length = str(length)
        # legs and offsets
        for k in keys:
            size = SIZES[DEVS[k][2]]
            room = size - length
            o = self.weighted([("zero", 50), ("end", 15), ("any", 35)])
            if room == 0 or o == "zero":
                off = "0"
            elif o == "end":
                off = sym(DEVS[k][2], room)
            else:
                off = str(r.randint(0, room))
            t.legs.append([self.devtok(k), off])
        # region size
        lo = max(2, -(-length // (MAX_REGIONS if t.sync == "nosync" else MAX_SYNC_REGIONS)))
        sizes = self.powers(lo, length)
        common = [s for s in sizes if 256 <= s <= 8192]
        t.region = str(self.pick(common) if common and r.random() < 0.5 else self.pick(sizes))
        regions = -(-length // int(t.region))
        # log
        if r.random() < 0.4:
            t.log = "disk"
            choices = [("C", 50), ("S", 20), ("A", 8), ("B", 7), ("Z", 5)]
            if log_buf_ok(regions, SIZES["L3"]):
                choices.append(("3", 15))
            key = self.weighted([(k, w) for k, w in choices if log_buf_ok(regions, SIZES[DEVS[k][2]])])
            t.logdev = self.devtok(key)
        # features
        t.features = self.weighted([
            (None, 45), (["1", "handle_errors"], 25), (["2", "handle_errors", "keep_log"], 10),
            (["2", "keep_log", "handle_errors"], 5), (["2", "handle_errors", "handle_errors"], 4),
            (["0"], 5), (["3", "handle_errors", "keep_log", "keep_log"], 3),
            (["3", "keep_log", "handle_errors", "handle_errors"], 3)])
        return t

    def numeric_fields(self, t):
        """(name, getter, setter, bits) of the numbers in a table."""
        f = [("log argument count", 32, lambda v: setattr(t, "count", v)),
             ("region size", 32, lambda v: setattr(t, "region", v)),
             ("mirror count", 32, lambda v: setattr(t, "mcount", v))]
        for i in range(len(t.legs)):
            f.append(("offset %d" % i, 64, lambda v, i=i: t.legs[i].__setitem__(1, v)))
        if t.features is not None:
            f.append(("feature count", 32, lambda v: t.features.__setitem__(0, v)))
        return f

    EXTREMES = ["0", "1", "2", "3", "7", "9", "10", "1023", "1025", "65535", "65536",
                "2147483647", "2147483648", "4294967295", "4294967296", "4294967297",
                "9223372036854775807", "9223372036854775808", "18446744073709551615",
                "18446744073709551616", "18446744073709551617", "36893488147419103232",
                "99999999999999999999", "340282366920938463463374607431768211456",
                "-1", "-0", "+2", "-1024", "0x400", "0x2", "1e3", "1024k", "2.0", "1,024",
                "00", "02", "0002", "01024", "001024", "x", "", "nan", "\u0662"]

    def vocab(self):
        return self.pick(["core", "disk", "sync", "nosync", "handle_errors", "keep_log",
                          "0", "1", "2", "3", "4", "9", "10", "1024", "8", "/dev/vda",
                          "/dev/vdb", "/dev/vdc", "@{MA}", "@{MC}", "/dev/nonexistent",
                          "-1", "x", "block_on_error", "mirror", "CORE", "4294967296",
                          "@{LA}", "@{LC}", "18446744073709551616", "Sync"])

    # --- the classes: each returns (table line, note) or None to retry ---
    def c_valid(self):
        t = self.valid()
        return t.line(), "valid"

    def c_cwrap(self):
        """C is wrong: a valid table with one number written as an alias that
        wraps to the same value in C (value + k * 2^32, offset + 2^64)."""
        t = self.valid()
        fields = self.numeric_fields(t)
        if OVERFLOW == "saturate":
            # only a 32-bit field below 2^64 still wraps there
            fields = [f for f in fields if f[1] == 32]
        name, bits, setf = self.pick(fields)
        cur = {"log argument count": lambda: len(t.log_tokens()) - 2,
               "region size": lambda: int(t.region),
               "mirror count": lambda: len(t.legs),
               "feature count": lambda: int(t.features[0]) if t.features else 0}
        if name.startswith("offset"):
            i = int(name.split()[1])
            val = int(nominal(t.legs[i][1]))
        else:
            val = cur[name]()
        if OVERFLOW == "saturate":
            k = self.pick([1, 1, 2])
        elif bits == 32:
            k = self.pick([1, 1, 2, 1 << 32])
        else:
            k = self.pick([1, 1, 2, 1 << 60])
        alias = val + k * (1 << bits)
        setf(str(alias))
        return t.line(), "%s %d written as %d" % (name, val, alias)

    def c_tokmut(self):
        t = self.valid()
        toks = t.tokens()
        ops = []
        for _ in range(self.weighted([(1, 6), (2, 3), (3, 1)])):
            op = self.pick(["drop", "drop", "dup", "swap", "swapany", "replace", "insert"])
            i = self.r.randrange(len(toks))
            if op == "drop" and len(toks) > 1:
                del toks[i]
            elif op == "dup":
                toks.insert(i, toks[i])
            elif op == "swap" and i + 1 < len(toks):
                toks[i], toks[i + 1] = toks[i + 1], toks[i]
            elif op == "swapany":
                j = self.r.randrange(len(toks))
                toks[i], toks[j] = toks[j], toks[i]
            elif op == "replace":
                toks[i] = self.vocab()
            elif op == "insert":
                toks.insert(i, self.vocab())
            else:
                continue
            ops.append("%s@%d" % (op, i))
        if not toks:
            return None
        return t.line(toks), " ".join(ops)

    def c_numeric(self):
        t = self.valid()
        name, bits, setf = self.pick(self.numeric_fields(t))
        v = self.pick(self.EXTREMES)
        if v == "":
            return None
        setf(v)
        return t.line(), "%s = %s" % (name, v)

    def c_counts(self):
        t = self.valid()
        n = len(t.legs)
        what = self.pick(["mcount", "mcount", "legs", "logcount", "featcount"])
        if what == "mcount":
            v = self.pick([0, 1, 10, 11, n - 1, n + 1, 2 * n, 9, 99])
            t.mcount = str(v)
            return t.line(), "mirror count %d for %d legs" % (v, n)
        if what == "legs":
            if self.r.random() < 0.5 and n > 0:
                del t.legs[self.r.randrange(n)]
                t.mcount = str(n)
                return t.line(), "%d legs given, count %d" % (n - 1, n)
            t.legs.append([self.devtok(self.pick("AB")), "0"])
            t.mcount = str(n)
            return t.line(), "%d legs given, count %d" % (n + 1, n)
        if what == "logcount":
            right = len(t.log_tokens()) - 2
            v = self.pick([0, 1, 2, 3, 4, 5, right - 1, right + 1, 99, 4294967295])
            t.count = str(v)
            return t.line(), "log argument count %d for %d" % (v, right)
        feats = t.features[1:] if t.features else ["handle_errors"]
        t.features = [str(self.pick([0, len(feats) + 1, len(feats) - 1, 5, 4294967295]))] + feats
        return t.line(), "feature count %s for %d" % (t.features[0], len(feats))

    def c_small(self):
        """Devices too small for the target, the boundary on both sides."""
        t = self.valid()
        r = self.r
        what = self.pick(["leg+1", "legc", "tiny", "log2", "log3", "logexact", "lensum"])
        n = len(t.legs)
        i = r.randrange(n)
        if what == "leg+1":
            key = self.pick("ABCS")
            size = SIZES[DEVS[key][2]]
            off = self.pick([0, 0, 8, size // 2])
            t.length = str(size - off + self.pick([0, 1, 1, 2, 4096]))
            for leg in t.legs:
                leg[1] = "0"
            t.legs[i] = [self.devtok(key), str(off)]
            t.region = str(self.pick([1024, 2048, 8]))
            t.sync = self.pick([None, "nosync"])
            return self.fix_region(t), "leg %s: offset %d, target length %s" % (key, off, t.length)
        if what == "legc":
            t.length = self.pick(["@{LA}", "@{LC+1}", "65536"])
            for leg in t.legs:
                leg[1] = "0"
            t.legs[i][0] = self.devtok("C")
            return self.fix_region(t), "vdc leg in a %s mirror" % t.length
        if what == "tiny":
            key = self.pick("23")
            t.length = self.pick(["2", "3", "4", "8"])
            t.region = "2"
            t.log = self.pick(["core", "core", "disk"])
            t.logdev = self.devtok("C")
            for leg in t.legs:
                leg[1] = "0"
            t.legs[i] = [self.devtok(key), self.pick(["0", "0", "1", "2"])]
            return t.line(), "leg dmrsf_%s, length %s" % (key, t.length)
        if what in ("log2", "log3", "logexact"):
            t.log = "disk"
            t.logdev = self.devtok("2" if what == "log2" else "3")
            if what == "logexact":
                # 4096 regions fit a 3-sector log, 4097 do not
                regions = self.pick([4096, 4097, 4096 + 64, 4033, 4032])
                t.length = str(regions * 2)
                t.region = "2"
                t.sync = "nosync"
                t.legs = [[self.devtok(self.pick("AB")), "0"] for _ in range(n)]
                return t.line(), "%d regions on the 3-sector log" % regions
            return self.fix_region(t), "disk log on dmrsf_%s" % what[-1]
        # the offset makes leg i end exactly at / one past the device end
        key = self.pick("ABC")
        size = SIZES[DEVS[key][2]]
        length = self.pick([1024, 4096, 65536]) if size > 65536 else self.pick([1024, 4096])
        t.length = str(length)
        for leg in t.legs:
            leg[1] = "0"
        d = self.pick([0, 1, -1])
        t.legs[i] = [self.devtok(key), sym(DEVS[key][2], size - length + d)]
        return self.fix_region(t), "leg %s ends %+d past the device end" % (key, d)

    def fix_region(self, t):
        """A region size that suits the (new) target length."""
        length = int(nominal(t.length))
        lo = max(2, -(-length // (MAX_REGIONS if t.sync == "nosync" else MAX_SYNC_REGIONS)))
        sizes = self.powers(lo, max(lo, length))
        t.region = str(self.pick(sizes)) if sizes else "2"
        return t.line()

    def c_offset(self):
        t = self.valid()
        i = self.r.randrange(len(t.legs))
        key = TOKEN_DEV[t.legs[i][0]]
        sz = DEVS[key][2]
        size = SIZES[sz]
        length = int(nominal(t.length))
        v = self.pick([sym(sz, size), sym(sz, size + 1), sym(sz, size - 1),
                       sym(sz, size - length), sym(sz, size - length + 1), sym(sz, size + length),
                       str(1 << 63), str(U64 - 1), str(U64 - length), str(U64 - length + 1),
                       str(U64), str(U64 + 1), str(U64 + 8), str(U64 * 2), str(1 << 32),
                       str(LLONG_MAX_SECTORS), "99999999999999999999"])
        t.legs[i][1] = v
        return t.line(), "offset %d of %d-sector leg %s = %s" % (i, size, key, v)

    def c_features(self):
        t = self.valid()
        words = self.pick([["frobnicate"], ["block_on_error"], ["keep_log"],
                           ["keep_log", "keep_log"], ["Handle_errors"], ["handle_errors,"],
                           ["handle_errors", "frobnicate"], ["HANDLE_ERRORS"],
                           ["handle_errors", "keep_log", "block_on_error"], ["handle_error"],
                           ["handle_errors", "handle_errors"], ["keep_log", "handle_errors"],
                           ["keep_log", "keep_log", "handle_errors"], ["1"], ["nosync"], []])
        count = str(len(words))
        if self.r.random() < 0.2:
            count = self.pick(["00", "01", "02", str(len(words) + 1)])
        t.features = [count] + words
        return t.line(), "features %s" % " ".join(t.features)

    def c_trailing(self):
        t = self.valid()
        toks = t.tokens()
        extra = self.pick([["extra"], ["0"], ["1"], ["0", "0"], ["handle_errors"],
                           ["1", "handle_errors"], ["/dev/vda", "0"], ["nosync"], ["-"], ["mirror"]])
        return t.line(toks + extra), "trailing %s" % " ".join(extra)

    def c_devname(self):
        t = self.valid()
        i = self.r.randrange(len(t.legs))
        if t.log == "disk" and self.r.random() < 0.3:
            v = self.pick(BAD_DEVS)
            t.logdev = v
            return t.line(), "log device %s" % v
        if self.r.random() < 0.5:
            v = self.pick(BAD_DEVS)
        else:
            # a good device under its other name (path <-> major:minor)
            key = TOKEN_DEV[t.legs[i][0]]
            path, mm, _ = DEVS[key]
            v = mm if t.legs[i][0] == path else path
        t.legs[i][0] = v
        return t.line(), "leg %d device %s" % (i, v)

    def c_logargs(self):
        t = self.valid()
        what = self.pick(["type", "sync", "disknodev", "coredev", "order", "count"])
        if what == "type":
            t.log = self.pick(["nosuchlog", "Core", "DISK", "clustered-disk", "userspace",
                               "core-", "disk-x", "mirror", "", "corelog"])
            if not t.log:
                return None
            return t.line(), "log type %s" % t.log
        if what == "sync":
            t.sync = self.pick(["fastsync", "SYNC", "Nosync", "no-sync", "nosync,", "1", "sync="])
            return t.line(), "sync word %s" % t.sync
        rest = t.tokens()[len(t.log_tokens()):]
        sync = [t.sync] if t.sync else []
        if what == "disknodev":
            toks = ["disk", str(1 + len(sync)), t.region] + sync
            return t.line(toks + rest), "disk log without a device"
        if what == "coredev":
            toks = ["core", str(2 + len(sync)), self.devtok("C"), t.region] + sync
            return t.line(toks + rest), "core log with a device"
        if what == "order":
            if t.sync is None:
                return None
            lt = t.log_tokens()
            lt[-1], lt[-2] = lt[-2], lt[-1]
            return t.line(lt + rest), "sync word before the region size"
        t.count = self.pick(["x", "-1", "1x", "0x1", "+1", "01", "0002"])
        return t.line(), "log argument count %s" % t.count

    def c_length(self):
        t = self.valid()
        length = self.pick(["0", "1", "2", "3", "5", "@{LA+1}", "@{LA-1}", "@{LC}", "4097",
                            str(1 << 40), str(LLONG_MAX_SECTORS), str(LLONG_MAX_SECTORS + 1),
                            str(1 << 63), str(U64 - 1), "@{LZ}", "@{LZ+1}"])
        t.length = length
        if self.r.random() < 0.5:
            self.fix_region(t)
        return t.line(), "target length %s for region size %s" % (length, t.region)

    def case(self, cls):
        return getattr(self, "c_" + cls)()


def generate(seed, count):
    g = Gen(seed)
    seen = set()
    cases = []
    tries = 0
    while len(cases) < count:
        tries += 1
        if tries > 50 * count + 1000:
            raise SystemExit("table-fuzz: cannot make %d distinct tables" % count)
        cls = g.weighted(CLASSES)
        got = g.case(cls)
        if got is None:
            continue
        line, note = got
        if "\t" in line or "\n" in line:
            continue
        key = nominal(line)
        if key in seen:
            continue
        m = Model(line)
        if not m.safe():
            continue
        if cls == "valid" and not m.accept:
            raise AssertionError("generator made an invalid 'valid' table: %s (%s)" % (line, m.why))
        if cls == "cwrap":
            if not (m.accept and m.wrap):
                raise AssertionError("cwrap case not accepted by the model: %s (%s)" % (line, m.why))
            expect = "cwrap"
        elif m.wrap:
            expect = "strict"
        else:
            expect = "same"
        seen.add(key)
        cases.append((len(cases) + 1, cls, expect, "A" if m.accept else "R",
                      (note + ("; C: " + m.why if m.why else "")).replace("\t", " "), line,
                      m.wrap))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("-o", "--output")
    ap.add_argument("--stats", action="store_true", help="print class counts and distinct tables")
    ap.add_argument("--overflow", choices=["wrap", "saturate"], default="wrap",
                    help="the guest kernel's sscanf on numbers >= 2^64 (6.12: wrap)")
    a = ap.parse_args()
    global OVERFLOW
    OVERFLOW = a.overflow
    cases = generate(a.seed, a.count)
    if a.stats:
        classes = {}
        for c in cases:
            k = classes.setdefault(c[1], [0, 0, 0])
            k[0] += 1
            k[1] += c[3] == "A"
            k[2] += c[2] != "same"
        for name, _ in CLASSES:
            n, acc, wrong = classes.get(name, [0, 0, 0])
            print("%-9s %5d cases, %4d accepted by C (model), %3d C-is-wrong" % (name, n, acc, wrong))
        tables = {c[5] for c in cases}
        resolved = {nominal(c[5]) for c in cases}
        print("%d cases, %d distinct tables (%d distinct with the sizes filled in)"
              % (len(cases), len(tables), len(resolved)))
        return 0
    out = open(a.output, "w") if a.output else sys.stdout
    out.write("# table-fuzz version=%d seed=%d count=%d (scripts/table-fuzz.py)\n"
              % (VERSION, a.seed, a.count))
    out.write("# sizes %s\n" % " ".join("%s=%d" % kv for kv in SIZES.items()))
    for key, why in C_WRONG.items():
        out.write("# C-wrong %s: %s\n" % (key, why))
    for c in cases:
        out.write("%d\t%s\t%s\t%s\t%s\t%s\n" % c[:6])
    if a.output:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
