"""Benchmark (not a test): QEMU start -> guest agent start, the way a VM run boots (same kernel
resolution, initramfs, accelerator, QEMU command line and agent), repeated --runs times.

    python3 -m vm bench-boot [--kernel debian] [--runs 3] [--fs ext4,xfs]

Per run it prints the total and where the time went, from the guest's own markers:
  qemu+firmware+kernel  QEMU start -> init starts (guest uptime at init, plus QEMU/firmware setup)
  root modules + 9p     init start -> agent exec (insmod of the 9p/virtio modules, 9p mounts)
  agent exec            agent exec -> "fsrace-agent: started" (dynamic loading of fsrace over 9p)
"""
from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time

from . import initramfs, kernel as kernel_mod
from .initramfs import GUEST_OUT
from .qemu import InstanceSpec, QemuBackend, detect_accel
from .runner import AGENT_START, repo_top


def bench(a) -> int:
    top = repo_top()
    cache = os.path.join(top, ".cache")
    fs = [f for f in a.fs.split(",") if f]
    k = kernel_mod.resolve(a.kernel, a.modules, fs, cache)
    initrd = initramfs.build(k, fs, os.path.join(cache, "initramfs"))
    accel, why = detect_accel(k.boot_path, initrd, os.path.join(cache, "vm"), os.environ.get("FSRACE_ACCEL"))
    fsrace = os.path.realpath(a.fsrace or os.path.join(top, "build", "harness", "fsrace"))
    mods = initramfs.modules_for(k, fs)
    print(f"kernel {k.image.release}, boot {k.boot_kind} ({k.boot_path}), accel {accel} ({why})")
    print(f"initramfs {os.path.getsize(initrd) / 1e6:.1f} MB: {sum(1 for m in mods if m[2] == 'root')} modules before the "
          f"agent, {sum(1 for m in mods if m[2] == 'fs')} filesystem modules loading in the background")
    backend = QemuBackend(accel, 2, 1024)
    totals = []
    for i in range(a.runs):
        work = tempfile.mkdtemp(prefix="fsrace-bench.", dir="/var/tmp")
        try:
            share = os.path.join(work, "share")
            os.makedirs(share)
            with open(os.path.join(share, "campaign.in.toml"), "w") as f:
                f.write('[campaign]\nname = "bench"\nfilesystems = ["ext4"]\n')
            with open(os.path.join(share, "agent.sh"), "w") as f:
                f.write(f"cd /tmp\nexec {fsrace} agent {GUEST_OUT}/campaign.in.toml --out {GUEST_OUT} --quiet\n")
            disk = os.path.join(work, "ext4.img")
            with open(disk, "wb") as f:
                f.truncate(256 << 20)
            inst = backend.create(InstanceSpec(k.boot_path, initrd, "", share, [disk], os.path.join(work, "console.log"), work))
            inst.start()
            t0 = inst.started_at
            while time.monotonic() - t0 < 300:
                con = inst.read_console(0)
                if AGENT_START in con:
                    break
                if inst.poll() is not None:
                    print(f"run {i + 1}: QEMU exited before the agent started: {inst.stderr_text().strip()[-300:]}")
                    return 2
                time.sleep(0.005)
            total = time.monotonic() - t0
            inst.cleanup()
            con = inst.read_console(0).decode(errors="replace")

            def up(pat):
                m = re.search(pat, con)
                return float(m.group(1)) if m else float("nan")
            up_init = up(r"fsrace-init: start \(uptime ([\d.]+) s\)")
            up_exec = up(r"fsrace-init: exec agent \(uptime ([\d.]+) s\)")
            up_agent = up(r"fsrace-agent: started \(uptime ([\d.]+) s\)")
            totals.append(total)
            print(f"run {i + 1}: QEMU start -> agent start {total:.2f} s = QEMU + firmware before the kernel clock "
                  f"{total - up_agent:.2f} s + kernel to init {up_init:.2f} s + root modules and 9p mounts "
                  f"{up_exec - up_init:.2f} s + agent exec (fsrace loaded over 9p) {up_agent - up_exec:.2f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"QEMU start -> agent start: median {statistics.median(totals):.2f} s, min {min(totals):.2f} s over {len(totals)} "
          f"run(s) (target <= 2 s); host load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0
