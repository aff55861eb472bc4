#!/usr/bin/env python3
"""Turns the raw benchmark results of scripts/bench.sh into numbers.

    bench-report.py WORKDIR OUTDIR RUN...

WORKDIR holds meta.txt, loadavg.txt and one directory per guest run (RUN,
e.g. main-disk, small-disk) with the guest's results/ (fio JSON, resync
timings, /proc snapshots, dd output). Writes OUTDIR/latest.json,
OUTDIR/latest.md and, if matplotlib is importable, OUTDIR/latest.png.
Every number printed comes from those files; nothing is estimated.
"""
import json
import os
import re
import statistics
import sys
import time

IMPL_NAMES = {"raw": "raw legs", "c": "C dm-mirror", "rs": "dm_mirror_rs (ours)", "md": "md raid1"}
# job -> (fio direction(s), metric, unit, is_write)
JOBS = {
    "seqwrite": (("write",), "bw", "MB/s", True, "sequential write 1 MiB QD8"),
    "randwrite": (("write",), "iops", "IOPS", True, "random write 4 KiB QD16"),
    "seqread": (("read",), "bw", "MB/s", False, "sequential read 1 MiB QD8"),
    "randread": (("read",), "iops", "IOPS", False, "random read 4 KiB, 4 jobs x QD4"),
    "mixed": (("read", "write"), "iops", "IOPS", True, "random 70/30 read/write 4 KiB, 4 jobs x QD4"),
}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def read_kv(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.rstrip("\n").partition(" ")
            if k:
                d[k] = v
    return d


def fio_groups(path):
    """[(metric dict per group)] from a fio JSON file (one entry per group)."""
    with open(path) as f:
        text = f.read()
    # fio may print notes before the JSON object
    text = text[text.index("{"):]
    data = json.loads(text)
    out = []
    for job in data["jobs"]:
        g = {}
        for d in ("read", "write"):
            g[d + "_iops"] = job[d]["iops"]
            g[d + "_bw"] = job[d]["bw_bytes"] / 1e6
            g[d + "_clat_mean_us"] = job[d]["clat_ns"]["mean"] / 1e3
        g["usr_cpu"] = job.get("usr_cpu")
        g["sys_cpu"] = job.get("sys_cpu")
        out.append(g)
    return out


def job_value(g, job):
    dirs, metric, _, _, _ = JOBS[job]
    return sum(g[d + "_" + metric] for d in dirs)


def cpu_busy(stat0, stat1):
    try:
        a = [int(x) for x in open(stat0).read().split()[1:]]
        b = [int(x) for x in open(stat1).read().split()[1:]]
    except (OSError, ValueError):
        return None
    d = [y - x for x, y in zip(a, b)]
    total = sum(d)
    idle = d[3] + (d[4] if len(d) > 4 else 0)
    return None if total <= 0 else 100.0 * (total - idle) / total


def leg_stats(path):
    """{"leg0": [fields of /sys/block/<leg>/stat], ...} from a legstat file."""
    d = {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) >= 8:
                d[f[0]] = [int(x) for x in f[1:]]
    except (OSError, ValueError):
        return None
    return d


def leg_split(base):
    """Per-leg I/O during one fio job: deltas of /sys/block/<leg>/stat
    (read I/Os, read sectors, write I/Os, write sectors) between legstat0
    and legstat1, taken by the guest around the job (ramp included). None
    for runs that predate the measurement."""
    a, b = leg_stats(base + ".legstat0"), leg_stats(base + ".legstat1")
    if not a or not b:
        return None
    out = {}
    for leg in sorted(set(a) & set(b)):
        x, y = a[leg], b[leg]
        out[leg] = {"read_ios": y[0] - x[0], "read_sectors": y[2] - x[2],
                    "write_ios": y[4] - x[4], "write_sectors": y[6] - x[6]}
    return out


def split_summary(recs):
    """Median per-leg read figures over the repetitions: each leg's share of
    the read sectors and of the read I/Os, and the MB and I/Os it read."""
    splits = [r["leg_io"] for r in recs if r.get("leg_io")]
    if not splits:
        return None
    legs = sorted(splits[0])
    out = {}
    for leg in legs:
        shares, ioshares, mb, ios = [], [], [], []
        for s in splits:
            tot = sum(s[l]["read_sectors"] for l in s)
            totios = sum(s[l]["read_ios"] for l in s)
            shares.append(s[leg]["read_sectors"] / tot if tot else None)
            ioshares.append(s[leg]["read_ios"] / totios if totios else None)
            mb.append(s[leg]["read_sectors"] * 512 / 1e6)
            ios.append(s[leg]["read_ios"])
        out[leg] = {"read_share_median": median(shares), "read_ios_share_median": median(ioshares),
                    "read_mb_median": median(mb), "read_ios_median": median(ios),
                    "read_share_reps": shares}
    return out


def io_results(resdir):
    iodir = os.path.join(resdir, "io")
    if not os.path.isdir(iodir):
        return None
    runs = {}
    for name in sorted(os.listdir(iodir)):
        m = re.match(r"(\w+)-(\w+)-r(\d+)\.json$", name)
        if not m:
            continue
        impl, job, rep = m.group(1), m.group(2), int(m.group(3))
        if job not in JOBS:
            continue
        base = os.path.join(iodir, name[:-5])
        try:
            groups = fio_groups(os.path.join(iodir, name))
        except (ValueError, KeyError, OSError) as e:
            print(f"warning: {name}: {e}", file=sys.stderr)
            continue
        vals = [job_value(g, job) for g in groups]
        rec = {"rep": rep, "cpu_busy_pct": cpu_busy(base + ".stat0", base + ".stat1"),
               "clat_mean_us": groups[0][JOBS[job][0][0] + "_clat_mean_us"],
               "leg_io": leg_split(base)}
        if impl == "raw":
            rec["legs"] = vals
            rec["sum"] = sum(vals)
            rec["min"] = min(vals)
            # the mirror's physical limit: every write goes to both legs, so
            # what one leg sustains while both are busy; reads can be spread
            # over both legs
            rec["value"] = rec["min"] if JOBS[job][3] else rec["sum"]
        else:
            rec["value"] = vals[0]
        if job == "mixed":
            rec["read_iops"] = groups[0]["read_iops"]
            rec["write_iops"] = groups[0]["write_iops"]
            if impl == "raw":
                rec["read_iops_sum"] = sum(g["read_iops"] for g in groups)
                rec["write_iops_sum"] = sum(g["write_iops"] for g in groups)
        runs.setdefault(job, {}).setdefault(impl, []).append(rec)
    out = {}
    for job, spec in JOBS.items():
        if job not in runs:
            continue
        impls = {}
        for impl, recs in runs[job].items():
            recs.sort(key=lambda r: r["rep"])
            impls[impl] = {
                "median": median([r["value"] for r in recs]),
                "reps": [r["value"] for r in recs],
                "cpu_busy_pct_median": median([r["cpu_busy_pct"] for r in recs]),
                "clat_mean_us_median": median([r["clat_mean_us"] for r in recs]),
            }
            if impl == "raw":
                impls[impl]["per_leg_median"] = median([r["min"] for r in recs])
                impls[impl]["both_legs_sum_median"] = median([r["sum"] for r in recs])
            if job == "mixed":
                impls[impl]["read_iops_median"] = median([r.get("read_iops") for r in recs])
                impls[impl]["write_iops_median"] = median([r.get("write_iops") for r in recs])
            if any(r.get("leg_io") for r in recs):
                impls[impl]["leg_io_reps"] = [r.get("leg_io") for r in recs]
            if "read" in spec[0]:
                split = split_summary(recs)
                if split:
                    impls[impl]["leg_read_split"] = split
        raw = impls.get("raw", {})
        limit = raw.get("median")
        rule = "per-leg value with both legs written at once" if spec[3] else "sum of both legs read at once"
        extra = {}
        if job == "mixed" and limit is not None:
            # A mirror write costs an I/O on every leg, a read one I/O on one
            # leg. Each raw leg sustains `per_leg` of these 4 KiB random I/Os
            # (the same 70/30 job on both raw legs at once: the slower leg's
            # IOPS); with the reads balanced over the 2 legs a mirror I/O costs
            # w*2 + (1-w)*1 leg I/Os of the 2*per_leg the legs give, so the
            # limit is per_leg / (w + (1-w)/2), w the measured write fraction
            # (fio's 30 %): ~2000 / 0.65 ~ 3077 IOPS for 2000-IOPS legs. With
            # every read on one leg (the C routing) that leg does all reads and
            # all writes, and the limit is per_leg.
            rr = [r for r in runs[job]["raw"] if r.get("read_iops_sum") is not None]
            wfrac = median([r["write_iops_sum"] / (r["read_iops_sum"] + r["write_iops_sum"])
                            for r in rr if r["read_iops_sum"] + r["write_iops_sum"] > 0])
            if wfrac is None:
                wfrac = 0.3
            extra = {"raw_limit_per_leg": limit, "raw_limit_write_fraction": wfrac,
                     "raw_limit_one_leg_reads": limit}
            limit = limit / (wfrac + (1 - wfrac) / 2)
            rule = ("per-leg IOPS of the same 70/30 job with both raw legs busy at once, divided by "
                    "(w + (1-w)/2), w the measured write fraction: a write costs every leg an I/O, "
                    "a read one leg, reads balanced over the 2 legs")
        rs = impls.get("rs", {}).get("median")
        out[job] = {
            "description": spec[4],
            "unit": spec[2],
            "raw_limit": limit,
            "raw_limit_rule": rule,
            **extra,
            "impls": impls,
            "ratios": {
                "ours/C": ratio(rs, impls.get("c", {}).get("median")),
                "ours/md": ratio(rs, impls.get("md", {}).get("median")),
                "ours/raw-limit": ratio(rs, limit),
                "C/raw-limit": ratio(impls.get("c", {}).get("median"), limit),
                "md/raw-limit": ratio(impls.get("md", {}).get("median"), limit),
            },
        }
    return out


def resync_results(resdir):
    path = os.path.join(resdir, "resync.txt")
    if not os.path.exists(path):
        return None
    per = {}
    for line in open(path):
        f = line.split()
        if len(f) < 5:
            continue
        impl, t0, t1, nbytes = f[0], float(f[2]), float(f[3]), int(f[4])
        secs = t1 - t0
        per.setdefault(impl, []).append({"seconds": secs, "bytes": nbytes,
                                         "mib_s": nbytes / 2**20 / secs if secs > 0 else None,
                                         "final": " ".join(f[5:])})
    impls = {i: {"median_mib_s": median([r["mib_s"] for r in recs]),
                 "median_seconds": median([r["seconds"] for r in recs]),
                 "bytes": recs[0]["bytes"], "reps": [r["mib_s"] for r in recs]}
             for i, recs in per.items()}
    rs = impls.get("rs", {}).get("median_mib_s")
    return {"unit": "MiB/s", "note": "time from table load (mdadm --create for md) until dmsetup status "
            "shows N/N (md: sync_action back to idle), polled every 0.1 s, /proc/uptime clock",
            "impls": impls,
            "ratios": {"ours/C": ratio(rs, impls.get("c", {}).get("median_mib_s")),
                       "ours/md": ratio(rs, impls.get("md", {}).get("median_mib_s"))}}


MEMKEYS = ("Slab", "SUnreclaim", "SReclaimable", "VmallocUsed", "Percpu", "MemFree")
# Slab caches a mirror target's own objects can land in (bios and biovecs,
# kmalloc'ed structures and mempools, dm core, dm-io and kcopyd). Caches of
# processes and files (vm_area_struct, filp, dentry, inode caches, ...) move
# with fio and the shell, not with the target, and are left out of
# "target_kib".
TARGET_CACHE = re.compile(r"^(kmalloc-|kmalloc-rcl-|kmalloc-cg-|bio-|biovec-|bio_|dm_|dm-|kcopyd)")
MODSETS = {"c": ("dm_mirror", "dm_region_hash", "dm_log"), "rs": ("dm_mirror_rs",), "md": ("raid1", "md_mod")}


def meminfo(path):
    d = {}
    for line in open(path):
        k, _, v = line.partition(":")
        d[k.strip()] = int(v.split()[0])
    return d


def slabinfo(path):
    d = {}
    for line in open(path):
        if line.startswith(("slabinfo", "#")):
            continue
        f = line.split()
        d[f[0]] = int(f[2]) * int(f[3])  # num_objs * objsize, bytes
    return d


def modsize(path, names):
    total = 0
    for line in open(path):
        f = line.split()
        if f[0] in names:
            total += int(f[1])
    return total


def mem_results(resdir):
    memdir = os.path.join(resdir, "mem")
    if not os.path.isdir(memdir):
        return None
    out = {}
    for name in sorted(os.listdir(memdir)):
        d = os.path.join(memdir, name)
        impl, _, size = name.partition("-")
        snaps = {}
        for st in ("0-base", "1-loaded", "2-created", "3-written", "4-settled", "5-removed", "6-unloaded"):
            p = os.path.join(d, st + ".meminfo")
            if os.path.exists(p):
                snaps[st] = (meminfo(p), slabinfo(os.path.join(d, st + ".slabinfo")))
        if "2-created" not in snaps:
            continue

        def delta(a, b):
            (ma, sa), (mb, sb) = snaps[a], snaps[b]
            r = {k + "_kib": mb.get(k, 0) - ma.get(k, 0) for k in MEMKEYS}
            r["MemFree_kib"] = -r["MemFree_kib"]  # as "used": positive = more memory in use
            r["slab_caches_kib"] = round((sum(sb.values()) - sum(sa.values())) / 1024)
            caches = {c: sb.get(c, 0) - sa.get(c, 0) for c in set(sa) | set(sb)}
            top = sorted(((v, c) for c, v in caches.items() if abs(v) >= 4096), reverse=True)[:8]
            r["top_slab_caches_kib"] = {c: round(v / 1024) for v, c in top}
            # the target's own memory: its slab caches plus vmalloc
            r["target_kib"] = round(sum(v for c, v in caches.items() if TARGET_CACHE.match(c)) / 1024) \
                + r["VmallocUsed_kib"]
            return r

        rec = {"device_mib": int(open(os.path.join(d, "sectors")).read()) // 2048}
        rp = os.path.join(d, "region")
        if os.path.exists(rp):
            rec["region_sectors"] = int(open(rp).read())
            rec["regions"] = -(-int(open(os.path.join(d, "sectors")).read()) // rec["region_sectors"])
        if "1-loaded" in snaps:
            rec["module_load"] = delta("0-base", "1-loaded")
            rec["module_size_kib"] = modsize(os.path.join(d, "1-loaded.modules"), MODSETS.get(impl, ())) // 1024
        rec["device_created"] = delta("1-loaded", "2-created")
        if "3-written" in snaps:
            rec["after_writes"] = delta("1-loaded", "3-written")
        if "4-settled" in snaps:
            rec["after_writes_settled"] = delta("1-loaded", "4-settled")
        if "5-removed" in snaps:
            rec["after_remove"] = delta("1-loaded", "5-removed")
        if "6-unloaded" in snaps:
            rec["after_unload"] = delta("0-base", "6-unloaded")
        out.setdefault(size, {})[impl] = rec
    for size, impls in out.items():
        rs, c = impls.get("rs"), impls.get("c")
        if rs and c:
            impls["ratios_ours/C"] = {
                st: ratio(rs[st]["target_kib"], c[st]["target_kib"]) if c[st]["target_kib"] > 0 else None
                for st in ("device_created", "after_writes", "after_writes_settled") if st in rs and st in c}
    return out


def dd_results(resdir):
    dddir = os.path.join(resdir, "dd")
    if not os.path.isdir(dddir):
        return None
    per = {}
    for name in sorted(os.listdir(dddir)):
        m = re.match(r"(\w+)-(direct|buffered)-r(\d+)(?:-(leg\d))?\.txt$", name)
        if not m:
            continue
        text = open(os.path.join(dddir, name)).read()
        mm = re.search(r"^(\d+) bytes .* copied, ([0-9.e+-]+) s", text, re.M)
        if not mm:
            continue
        mbs = int(mm.group(1)) / float(mm.group(2)) / 1e6
        per.setdefault((m.group(2), m.group(1)), {}).setdefault(int(m.group(3)), []).append(mbs)
    out = {}
    for (kind, impl), reps in per.items():
        # raw: both legs written at once; the mirror's limit is the slower leg
        vals = [min(v) for _, v in sorted(reps.items())]
        out.setdefault(kind, {"unit": "MB/s", "impls": {}})["impls"][impl] = {"median": median(vals), "reps": vals}
    for kind, r in out.items():
        i = r["impls"]
        rs = i.get("rs", {}).get("median")
        r["ratios"] = {"ours/C": ratio(rs, i.get("c", {}).get("median")),
                       "ours/md": ratio(rs, i.get("md", {}).get("median")),
                       "ours/raw-limit": ratio(rs, i.get("raw", {}).get("median"))}
    mi = os.path.join(dddir, "meminfo-end.txt")
    if os.path.exists(mi):
        out["guest_meminfo_kib"] = {k: v for k, v in meminfo(mi).items()}
    return out


def loadavg(path, t0=None, t1=None):
    xs = []
    if os.path.exists(path):
        for line in open(path):
            f = line.split()
            if len(f) >= 2:
                t = int(f[0])
                if (t0 is None or t >= t0) and (t1 is None or t <= t1):
                    xs.append(float(f[1]))
    if not xs:
        return None
    return {"samples": len(xs), "min": min(xs), "mean": round(sum(xs) / len(xs), 2), "max": max(xs)}


def fmt(v, unit=""):
    if v is None:
        return "–"
    if unit == "x":
        return f"{v:.2f}×"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}"


def main():
    work, outdir, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    meta = read_kv(os.path.join(work, "meta.txt"))
    result = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{meta.get('host_cpus', '?')}-core {meta.get('host_os', '?')} host, "
                   "QEMU TCG guest (-accel tcg, -smp 2, q35), "
                   f"non-debug {meta.get('kernel', '6.12')} kernel",
        "guest_accel": "tcg",
        "meta": meta,
        "host_loadavg_1min": loadavg(os.path.join(work, "loadavg.txt")),
        "runs": {},
    }
    for run in runs:
        rd = os.path.join(work, run)
        res = os.path.join(rd, "results")
        r = {"guest_info": read_kv(os.path.join(res, "info.txt"))}
        ws = os.path.join(rd, "wall_seconds")
        if os.path.exists(ws):
            r["wall_seconds"] = int(open(ws).read())
        errs = os.path.join(res, "errors.txt")
        r["errors"] = open(errs).read().splitlines() if os.path.exists(errs) else []
        dm = os.path.join(res, "dmesg.txt")
        if os.path.exists(dm):
            r["kernel_splats"] = [l.rstrip() for l in open(dm, errors="replace")
                                  if re.search(r"WARNING:|BUG:|Oops|Call Trace:|hung_task|blocked for more than", l)]
        for key, fn in (("io", io_results), ("resync", resync_results), ("memory", mem_results),
                        ("smallmem_seqwrite", dd_results)):
            v = fn(res) if os.path.isdir(res) else None
            if v:
                r[key] = v
        result["runs"][run] = r

    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "latest.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
    md = markdown(result)
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write(md)
    chart(result, os.path.join(outdir, "latest.png"))


def markdown(res):
    m = res["meta"]
    la = res["host_loadavg_1min"] or {}
    L = []
    L.append("# dm-mirror-rs benchmark\n")
    L.append(f"Generated {res['generated']} by `scripts/bench.sh`{' --quick' if m.get('quick') == '1' else ''} "
             f"(git {m.get('git', '?')}).\n")
    L.append(f"- Machine: {res['machine']}; {m.get('qemu', '')}.")
    L.append(f"- Host load average (1 min) during the run: min {la.get('min')}, mean {la.get('mean')}, "
             f"max {la.get('max')} ({la.get('samples')} samples, every 5 s). The host is shared with other "
             "work; TCG numbers move with it.")
    L.append(f"- {m.get('reps')} repetition(s), median reported; fio {m.get('runtime')} s time-based + "
             f"{m.get('ramp')} s ramp, direct I/O (libaio), {m.get('fio_mib')} MiB working set; legs "
             f"{m.get('leg_mib')} MiB sparse files, virtio-blk, cache=unsafe; dm region = md bitmap chunk = "
             f"{int(m.get('region_sectors', 0)) // 2} KiB.")
    L.append("- disk mode: every leg throttled by QEMU (`" + m.get("throttle", "") + "`); "
             "cpu mode: unthrottled (the emulated CPU is the limit).")
    rot = sorted({r.get("guest_info", {}).get("legs_rotational", "").strip() for r in res["runs"].values()})
    rot = [x for x in rot if x]
    if rot:
        L.append("- Legs marked non-rotational in the guest (`queue/rotational` = 0, read back: "
                 + "; ".join(f"`{x}`" for x in rot) + ") before any device is created, for every "
                 "target alike (raw, C, ours, md): virtio-blk over host files reports rotational=1, "
                 "but these legs have no heads, and the read policy would keep a sequential stream "
                 "on one rotational leg.")
    else:
        L.append("- Legs as virtio-blk reports them (`queue/rotational` = 1; this run predates "
                 "marking them non-rotational).")
    L.append("- raw limit: the same job on both raw legs at once; for writes the slower leg's result "
             "(a mirror writes everything to both), for reads the sum (what perfect read balancing "
             "could reach). The random 70/30 mix mixes both: a write costs every leg an I/O and a "
             "read one leg, so with reads balanced over the 2 legs a mirror I/O costs w·2 + (1−w)·1 "
             "leg I/Os of the 2 × per-leg IOPS the legs give, and its limit is per-leg IOPS / "
             "(w + (1−w)/2), w the measured write fraction (0.3): about 2000 / 0.65 ≈ 3077 IOPS "
             "for 2000-IOPS legs. (With every read on one leg, the C routing, that leg does all "
             "reads and all writes, and the limit is the per-leg IOPS.)")
    if any(v.get("leg_read_split") for r in res["runs"].values() for j in (r.get("io") or {}).values()
           for v in j["impls"].values()):
        L.append("- Per-leg read split: the deltas of `/sys/block/<leg>/stat` (read I/Os, read "
                 "sectors) across each job, fio's ramp included, for every target.")
    L.append("")
    for run, r in res["runs"].items():
        L.append(f"## {run}\n")
        if r.get("errors"):
            L.append("Guest errors: " + "; ".join(r["errors"]) + "\n")
        if "kernel_splats" in r:
            L.append(f"Guest kernel log: {len(r['kernel_splats'])} WARNING/BUG/Oops/hung-task lines.\n")
        L.extend(targets14(r, disk_mode=run.endswith("-disk")))
        L.extend(targets(r, disk_mode=run.endswith("-disk")))
        io = r.get("io")
        if io:
            L.append("| job | unit | raw limit | C | ours | md | ours/C | ours/md | ours/raw-limit |")
            L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for job, j in io.items():
                i = j["impls"]
                L.append(f"| {j['description']} | {j['unit']} | {fmt(j['raw_limit'])} | "
                         f"{fmt(i.get('c', {}).get('median'))} | {fmt(i.get('rs', {}).get('median'))} | "
                         f"{fmt(i.get('md', {}).get('median'))} | {fmt(j['ratios']['ours/C'], 'x')} | "
                         f"{fmt(j['ratios']['ours/md'], 'x')} | {fmt(j['ratios']['ours/raw-limit'], 'x')} |")
            L.append("")
            mx = io.get("mixed")
            if mx and mx.get("raw_limit_per_leg") is not None:
                L.append(f"The mix's raw limit {fmt(mx['raw_limit'])} IOPS = per-leg {fmt(mx['raw_limit_per_leg'])} "
                         f"IOPS / ({mx['raw_limit_write_fraction']:.3f} + {1 - mx['raw_limit_write_fraction']:.3f}/2) "
                         "(reads balanced; with every read on one leg the limit is the per-leg "
                         f"{fmt(mx['raw_limit_one_leg_reads'])}: C/that {fmt(ratio(mx['impls'].get('c', {}).get('median'), mx['raw_limit_one_leg_reads']), 'x')}).\n")
            L.extend(split_table(io))
            L.append("Every repetition (in run order; the table shows the median):\n")
            for job, j in io.items():
                L.append(f"- {job}: " + "; ".join(
                    f"{k} " + ", ".join(fmt(x) for x in j["impls"][k]["reps"])
                    for k in ("raw", "c", "rs", "md") if k in j["impls"]))
            L.append("")
            L.append("Guest CPU busy during the run (median %, both vCPUs): " + "; ".join(
                f"{job}: " + ", ".join(f"{k} {fmt(v.get('cpu_busy_pct_median'))}" for k, v in j["impls"].items())
                for job, j in io.items()) + "\n")
        rs = r.get("resync")
        if rs:
            L.append("Resync of the whole device (" + rs["note"] + "):\n")
            L.append("| impl | MiB/s | seconds | bytes |")
            L.append("|---|---:|---:|---:|")
            for impl, v in rs["impls"].items():
                L.append(f"| {IMPL_NAMES.get(impl, impl)} | {fmt(v['median_mib_s'])} | "
                         f"{v['median_seconds']:.2f} | {v['bytes']} |")
            L.append(f"\nours/C {fmt(rs['ratios']['ours/C'], 'x')}, ours/md {fmt(rs['ratios']['ours/md'], 'x')}; "
                     "every repetition (MiB/s): " + "; ".join(
                         f"{k} " + ", ".join(fmt(x) for x in v["reps"]) for k, v in rs["impls"].items()) + "\n")
        mem = r.get("memory")
        if mem:
            L.append("Memory (KiB; /proc/meminfo deltas after `sync; drop_caches`, guest booted with `slab_nomerge`; "
                     "'device' = after creating the device, 'after writes' = after 5 s of 4 KiB random writes "
                     "over the whole device (+3 s settle), 'removed' = after removing the device; all relative to "
                     "the module loaded without a device. 'target' = the deltas of the slab caches a target's "
                     "objects land in (kmalloc-*, bio-*, biovec-*, dm*, kcopyd*) plus VmallocUsed, i.e. "
                     "without the process and file caches fio and the shell move; SUnreclaim is all "
                     "unreclaimable slab; 'MemFree used' also counts whole pages (mempools of pages, kcopyd "
                     "reserves) and is noisier. Deltas below ~70 KiB are at the noise level of this "
                     "measurement; the biggest per-cache deltas are in latest.json):\n")
            L.append("| legs | impl | module text+data | device: target | device: SUnreclaim | device: MemFree used "
                     "| after writes: target | after writes: SUnreclaim | after writes: MemFree used "
                     "| removed: target | removed: SUnreclaim |")
            L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for size, impls in mem.items():
                for impl in ("c", "rs", "md"):
                    v = impls.get(impl)
                    if not v:
                        continue
                    g = lambda st, k: v.get(st, {}).get(k, "–")  # noqa: E731
                    legs = f"{v['device_mib']} MiB" + (f", {v['regions']} regions" if "regions" in v else "")
                    L.append(f"| {legs} | {IMPL_NAMES.get(impl, impl)} | {v.get('module_size_kib', '–')} | "
                             f"{g('device_created', 'target_kib')} | {g('device_created', 'SUnreclaim_kib')} | "
                             f"{g('device_created', 'MemFree_kib')} | {g('after_writes_settled', 'target_kib')} | "
                             f"{g('after_writes_settled', 'SUnreclaim_kib')} | {g('after_writes_settled', 'MemFree_kib')} | "
                             f"{g('after_remove', 'target_kib')} | {g('after_remove', 'SUnreclaim_kib')} |")
            L.append("")
            for size, impls in mem.items():
                if "ratios_ours/C" in impls:
                    L.append(f"- target memory ours/C ({size} legs): " + ", ".join(
                        f"{k} {fmt(v, 'x')}" for k, v in impls["ratios_ours/C"].items())
                        + " (– where C's delta is not positive)")
            L.append("")
        dd = r.get("smallmem_seqwrite")
        if dd:
            gm = dd.get("guest_meminfo_kib", {})
            L.append(f"Small-memory sequential write (guest RAM {res['meta'].get('small_mem')}, MemTotal "
                     f"{gm.get('MemTotal', '?')} KiB; GNU dd bs=1M, {r['guest_info'].get('cmdline', '').split('bench.size=')[-1].split()[0] if 'bench.size=' in r['guest_info'].get('cmdline', '') else '?'} MiB; "
                     "raw = both legs at once, slower leg):\n")
            L.append("| dd | unit | raw limit | C | ours | md | ours/C | ours/md | ours/raw-limit |")
            L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
            for kind in ("direct", "buffered"):
                if kind not in dd:
                    continue
                i = dd[kind]["impls"]
                label = "oflag=direct (QD1)" if kind == "direct" else "buffered + conv=fdatasync"
                L.append(f"| {label} | MB/s | {fmt(i.get('raw', {}).get('median'))} | {fmt(i.get('c', {}).get('median'))} | "
                         f"{fmt(i.get('rs', {}).get('median'))} | {fmt(i.get('md', {}).get('median'))} | "
                         f"{fmt(dd[kind]['ratios']['ours/C'], 'x')} | {fmt(dd[kind]['ratios']['ours/md'], 'x')} | "
                         f"{fmt(dd[kind]['ratios']['ours/raw-limit'], 'x')} |")
            L.append("")
    return "\n".join(L) + "\n"


def split_table(io):
    rows = []
    for job, j in io.items():
        for impl in ("raw", "c", "rs", "md"):
            sp = j["impls"].get(impl, {}).get("leg_read_split")
            if not sp:
                continue
            legs = sorted(sp)
            share = " / ".join(f"{100 * sp[l]['read_share_median']:.0f} %" if sp[l]["read_share_median"] is not None
                               else "–" for l in legs)
            ioshare = " / ".join(f"{100 * sp[l]['read_ios_share_median']:.0f} %"
                                 if sp[l]["read_ios_share_median"] is not None else "–" for l in legs)
            mb = " / ".join(fmt(sp[l]["read_mb_median"]) for l in legs)
            ios = " / ".join(f"{sp[l]['read_ios_median']:.0f}" for l in legs)
            reps = "; ".join(", ".join(f"{100 * x:.0f}" if x is not None else "–" for x in sp[l]["read_share_reps"])
                             for l in legs[:1])
            rows.append(f"| {job} | {IMPL_NAMES.get(impl, impl)} | {share} | {ioshare} | {mb} | {ios} | {reps} |")
    if not rows:
        return []
    return ["Per-leg read split (leg0 / leg1; medians over the repetitions; /sys/block/<leg>/stat deltas "
            "across each job):\n",
            "| job | impl | share of read sectors | share of read I/Os | MB read | read I/Os | leg0 sector share per rep (%) |",
            "|---|---|---:|---:|---:|---:|---|"] + rows + [""]


# issue #14: what read balancing has to reach (read from this report, never
# asserted in timed tests)
def targets14(r, disk_mode=True):
    io = r.get("io") or {}
    dd = r.get("smallmem_seqwrite") or {}
    if not io and not dd:
        return []
    L = []

    def line(name, what, v, want):
        ok = v is not None and v >= want
        L.append(f"- {name}: {what} {fmt(v, 'x')} (target ≥ {want:.2f}×) — {'met' if ok else 'MISSED'}")

    if disk_mode:
        L.append("Targets of issue #14 (disk mode: sequential reads ≥ 1.9× C, random reads ≥ 1.95× C, "
                 "the 70/30 mix ≥ 0.95 of its limit and ≥ md, every write job ≥ 0.98× C):\n")
        if "seqread" in io:
            line("seqread", "ours/C", io["seqread"]["ratios"]["ours/C"], 1.9)
        if "randread" in io:
            line("randread", "ours/C", io["randread"]["ratios"]["ours/C"], 1.95)
        if "mixed" in io:
            line("mixed", "ours/raw-limit (reads balanced)", io["mixed"]["ratios"]["ours/raw-limit"], 0.95)
            line("mixed", "ours/md", io["mixed"]["ratios"]["ours/md"], 1.0)
        for job in ("seqwrite", "randwrite"):
            if job in io:
                line(job, "ours/C", io[job]["ratios"]["ours/C"], 0.98)
        for kind in ("direct", "buffered"):
            if kind in dd:
                line(f"dd {kind} (small-memory guest)", "ours/C", dd[kind]["ratios"]["ours/C"], 0.98)
    else:
        L.append("Targets of issue #14 (cpu mode: every read job ≥ 1.0× C; the 70/30 mix counted as one):\n")
        for job in ("seqread", "randread", "mixed"):
            if job in io:
                line(job, "ours/C", io[job]["ratios"]["ours/C"], 1.0)
    L.append("")
    return L


# issue #7: the reference numbers (legs throttled to 100 MiB/s and 2000 IOPS)
# and what ours has to reach
REFERENCE = {"seqwrite": ("c", 103), "randwrite": ("c", 2000), "seqread": ("c", 103), "randread": ("c", 2000)}
REFERENCE_MD = {"randread": 4000}
REFERENCE_RESYNC = {"c": 91, "md": 97}


def targets(r, disk_mode=True):
    io, rs, mem = r.get("io") or {}, r.get("resync"), r.get("memory") or {}
    if not io and not rs:
        return []
    L = ["Targets of issue #7 (ours ≥ 0.98× C on writes, ≥ 1.00× C on resync, memory ≤ C):\n"]
    for job in ("seqwrite", "randwrite", "mixed"):
        if job in io:
            v = io[job]["ratios"]["ours/C"]
            ok = v is not None and v >= 0.98
            L.append(f"- {job}: ours/C {fmt(v, 'x')} — {'met' if ok else 'SHORT'}")
    if rs:
        v = rs["ratios"]["ours/C"]
        L.append(f"- resync: ours/C {fmt(v, 'x')} — {'met' if v is not None and v >= 1.0 else 'SHORT'}")
    for size, impls in mem.items():
        o, c = impls.get("rs"), impls.get("c")
        if o and c:
            for st, label in (("device_created", "device"), ("after_writes_settled", "after writes")):
                a, b = o[st].get("target_kib"), c[st].get("target_kib")
                sa, sb = o[st]["SUnreclaim_kib"], c[st]["SUnreclaim_kib"]
                fa, fb = o[st]["MemFree_kib"], c[st]["MemFree_kib"]
                verdict = "–" if a is None or b is None else ("met" if a <= b else "SHORT")
                legs = f"{o['device_mib']} MiB legs" + (f" ({o['regions']} regions)" if "regions" in o else "")
                L.append(f"- memory, {legs}, {label}: target ours {a} KiB vs C {b} KiB — {verdict} "
                         f"(SUnreclaim ours {sa} vs C {sb} KiB, MemFree used ours {fa} vs C {fb} KiB)")
    L.append("")
    if not disk_mode:
        return L
    L.append("Reference numbers from the issue vs this run (same throttling; a CPU-starved TCG guest "
             "falls short of the disk limit on 4 KiB jobs):\n")
    for job, (impl, ref) in REFERENCE.items():
        if job in io:
            got = io[job]["impls"].get(impl, {}).get("median")
            L.append(f"- C {job}: reference ~{ref} {io[job]['unit']}, here {fmt(got)}")
    for job, ref in REFERENCE_MD.items():
        if job in io:
            L.append(f"- md {job}: reference ~{ref} {io[job]['unit']}, here {fmt(io[job]['impls'].get('md', {}).get('median'))}")
    if rs:
        for impl, ref in REFERENCE_RESYNC.items():
            L.append(f"- {impl} resync: reference ~{ref} MiB/s, here {fmt(rs['impls'].get(impl, {}).get('median_mib_s'))}")
    L.append("")
    return L


def chart(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("warning: matplotlib missing, no chart", file=sys.stderr)
        return
    panels = []
    for run, r in res["runs"].items():
        labels, vals = [], {"ours/C": [], "ours/md": [], "ours/raw-limit": []}
        for job, j in (r.get("io") or {}).items():
            labels.append(job)
            for k in vals:
                vals[k].append(j["ratios"].get(k))
        if r.get("resync"):
            labels.append("resync")
            vals["ours/C"].append(r["resync"]["ratios"]["ours/C"])
            vals["ours/md"].append(r["resync"]["ratios"]["ours/md"])
            vals["ours/raw-limit"].append(None)
        dd = r.get("smallmem_seqwrite") or {}
        for kind in ("direct", "buffered"):
            if kind in dd:
                labels.append(f"dd {kind}")
                for k in vals:
                    vals[k].append(dd[kind]["ratios"].get(k))
        if labels:
            panels.append((run, labels, vals))
    splits = []
    for run, r in res["runs"].items():
        bars = []
        for job, j in (r.get("io") or {}).items():
            for impl in ("raw", "c", "rs", "md"):
                sp = j["impls"].get(impl, {}).get("leg_read_split")
                if sp and all(sp[l]["read_share_median"] is not None for l in sp):
                    bars.append((f"{job}\n{impl}", [sp[l]["read_share_median"] for l in sorted(sp)],
                                 [sp[l]["read_mb_median"] for l in sorted(sp)]))
        if bars:
            splits.append((run, bars))
    if not panels and not splits:
        return
    n_ax = len(panels) + len(splits)
    fig, axes = plt.subplots(n_ax, 1, figsize=(11, 3.6 * n_ax), squeeze=False)
    colors = {"ours/C": "#1f77b4", "ours/md": "#ff7f0e", "ours/raw-limit": "#2ca02c"}
    for ax, (run, bars) in zip(axes[len(panels):, 0], splits):
        xs = range(len(bars))
        bottom = [0.0] * len(bars)
        for k, lc in enumerate(("#9467bd", "#8c564b", "#e377c2")):
            ys = [b[1][k] if k < len(b[1]) else 0 for b in bars]
            if not any(ys):
                continue
            ax.bar(xs, ys, 0.6, bottom=bottom, color=lc, label=f"leg{k}")
            for x, y, b0 in zip(xs, ys, bottom):
                if y >= 0.04:
                    ax.text(x, b0 + y / 2, f"{100 * y:.0f}%", ha="center", va="center", fontsize=7, color="white")
            bottom = [b0 + y for b0, y in zip(bottom, ys)]
        ax.axhline(0.5, color="black", linewidth=0.6, linestyle="--")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([b[0] for b in bars], fontsize=7)
        ax.set_ylim(0, 1.0)
        ax.set_ylabel("share of read sectors")
        ax.set_title(f"per-leg read split (/sys/block/<leg>/stat deltas), {run}", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax, (run, labels, vals) in zip(axes[:len(panels), 0], panels):
        n = len(labels)
        w = 0.27
        for k, (key, vs) in enumerate(vals.items()):
            xs = [x + (k - 1) * w for x in range(n)]
            ys = [v if v is not None else 0 for v in vs]
            bars = ax.bar(xs, ys, w, label=key, color=colors[key])
            for b, v in zip(bars, vs):
                if v is not None:
                    ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{v:.2f}", ha="center",
                            va="bottom", fontsize=7)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(0.98, color="gray", linewidth=0.6, linestyle="--")
        ax.set_xticks(range(n))
        ax.set_xticklabels(labels)
        ax.set_ylabel("ratio (higher = ours faster)")
        ax.set_title(f"dm_mirror_rs ratios, {run} ({res['machine']})", fontsize=9)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
