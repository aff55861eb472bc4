#!/usr/bin/env python3
"""Stop one vCPU of a QEMU guest from the host, again and again.

    scripts/vcpu-stall.py QEMU_PID [--cpu N] [--stall MS] [--run MS]
                          [--start-file PATH] [--stop-file PATH]

A guest kernel built with PREEMPT_NONE runs a short stretch of kernel code
(between an I/O completion's last use of an object and its release, say)
without interruption, so a race whose window is a few instructions wide
almost never opens in a guest on an idle host. On a loaded host it does:
the host deschedules a vCPU thread for milliseconds at an arbitrary
instruction while the other vCPU runs on. This script does that on purpose,
so such races show up in minutes instead of once in a thousand runs.

It finds the vCPU thread by name ("CPU N/TCG"; run-guest.sh starts QEMU
with debug-threads=on), attaches to that one thread with ptrace
(PTRACE_SEIZE attaches to a single thread, not the process), and then
loops: PTRACE_INTERRUPT (the thread stops wherever it is), sleep STALL ms
(each time drawn from 0.5..1.5 x), PTRACE_CONT, sleep RUN ms (likewise).
Stopped, the thread costs no CPU. The guest sees its vCPU N stop
responding for a while; its clocks keep running. Signals that arrive for
the thread while it is traced are passed on when it continues.

With --start-file, the stalls begin once that file exists, and pause while
--stop-file exists (for stalling only part of a run by hand; run-guest.sh
stalls the whole run). Exits when QEMU exits; prints how many stalls it made.
"""
import argparse
import ctypes
import os
import random
import signal
import sys
import time

PTRACE_CONT = 7
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL: wait for a thread that is not the group leader

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long


def ptrace(req, tid, data=0):
    if libc.ptrace(req, tid, None, ctypes.c_void_p(data)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"ptrace({req:#x}, {tid}): {os.strerror(e)}")


def find_vcpu(pid, cpu, wait_s=60.0):
    want = f"CPU {cpu}/"
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{t}/comm") as f:
                        if f.read().startswith(want):
                            return int(t)
                except OSError:
                    pass
        except OSError:
            return None  # QEMU is gone
        time.sleep(0.2)
    return None


def reap(tid, block):
    """One wait for the thread: None if it exited, 0 for nothing new (or
    our interrupt's stop when block), else a signal it stopped for, to be
    passed on when it continues."""
    while True:
        try:
            got, status = os.waitpid(tid, WALL | (0 if block else os.WNOHANG))
        except ChildProcessError:
            return None
        if got == 0:
            return 0
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            return None
        if os.WIFSTOPPED(status):
            if status >> 16 == 0x80:  # PTRACE_EVENT_STOP: our interrupt (or a group stop)
                return -1 if not block else 0
            return os.WSTOPSIG(status)  # a signal-delivery stop


def run_for(tid, seconds):
    """Lets the thread run for SECONDS, passing on any signal it stops
    for at once; False if it exited."""
    end = time.monotonic() + seconds
    while True:
        sig = reap(tid, block=False)
        if sig is None:
            return False
        if sig != 0:
            ptrace(PTRACE_CONT, tid, max(sig, 0))
            continue
        left = end - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.002))


def stop(tid):
    """Stops the thread where it is; False if it exited."""
    ptrace(PTRACE_INTERRUPT, tid)
    while True:
        sig = reap(tid, block=True)
        if sig is None:
            return False
        if sig == 0:
            return True
        # a signal arrived first: let it through, then stop again
        ptrace(PTRACE_CONT, tid, sig)
        ptrace(PTRACE_INTERRUPT, tid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--stall", type=float, default=30.0, help="ms stopped (mean)")
    ap.add_argument("--run", type=float, default=30.0, help="ms running (mean)")
    ap.add_argument("--tid", type=int, help="the vCPU thread, if QEMU names no threads")
    ap.add_argument("--start-file")
    ap.add_argument("--stop-file")
    a = ap.parse_args()

    tid = a.tid or find_vcpu(a.pid, a.cpu)
    if tid is None:
        print(f"vcpu-stall: no thread 'CPU {a.cpu}/...' in process {a.pid}", file=sys.stderr)
        return 1
    ptrace(PTRACE_SEIZE, tid)
    stalls = 0
    stalled_s = 0.0
    try:
        while os.path.exists(f"/proc/{a.pid}"):
            if (a.start_file and not os.path.exists(a.start_file)) or (
                a.stop_file and os.path.exists(a.stop_file)
            ):
                if not run_for(tid, 0.2):
                    break
                continue
            t0 = time.monotonic()
            try:
                if not stop(tid):
                    break
                time.sleep(a.stall / 1000.0 * random.uniform(0.5, 1.5))
                ptrace(PTRACE_CONT, tid, 0)
                stalls += 1
                stalled_s += time.monotonic() - t0
                if not run_for(tid, a.run / 1000.0 * random.uniform(0.5, 1.5)):
                    break
            except OSError:
                break
    finally:
        try:
            ptrace(PTRACE_DETACH, tid)
        except OSError:
            pass
    print(f"vcpu-stall: {stalls} stalls of vCPU {a.cpu}, {stalled_s:.1f} s stopped in all")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
