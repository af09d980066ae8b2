"""VM mode orchestration: campaign -> jobs (fs x scenario x repetition spread over N VMs) -> one guest
per job running `fsrace agent` -> watch boot, heartbeat, exit -> vm.json -> `fsrace vm-report`, which
writes the run's findings.json / summary.txt with the same layout as host mode.

Decisions that are policy, not plumbing, are pure functions here (split_jobs, HangWatch, classify_end;
the case matrix itself comes from `fsrace plan --json`) and unit-tested in vm/tests. Log *interpretation* is not done here: the console goes
through the C++ kernel-log analyzer in vm-report; this module only looks for its own markers.
"""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib

from . import initramfs, kernel as kernel_mod
from .errors import VmError
from .initramfs import GUEST_OUT
from .qemu import QemuBackend, InstanceSpec, detect_accel, give_share, plan_isolation, qemu_binary, take_back
from .status import VmStatus, stderr_is_terminal

AGENT_START = b"fsrace-agent: started"
INIT_ERROR = b"fsrace-init: error: "
AGENT_EXIT = re.compile(rb"fsrace-init: agent exit (\d+)")  # the init's line: the agent's status without the share
PANIC = b"Kernel panic - not syncing"
POLL_S = 0.02
# Paths the guest does not see from the host (tmpfs or its own proc/sys/dev mounted over them).
GUEST_HIDDEN = ("/tmp", "/var/tmp", "/run", "/proc", "/sys", "/dev")
# Of those, the ones the guest init can keep a host directory visible in (fsrace.keep=DIR).
GUEST_KEEPABLE = ("/tmp", "/var/tmp")


def guest_keep_dir(path: str):
    """For a path under /tmp or /var/tmp, the directory right below that root (to bind into the guest's
    tmpfs), e.g. /tmp/ciclone/build/harness/fsrace -> /tmp/ciclone; None otherwise or when the name
    cannot travel on the kernel command line."""
    for root in GUEST_KEEPABLE:
        if path.startswith(root + "/"):
            first = path[len(root) + 1:].split("/", 1)[0]
            keep = f"{root}/{first}"
            if first and not any(c.isspace() for c in keep) and keep != path:
                return keep
    return None


def repo_top() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- pure policy ---------------------------------------------------------------------------------

def plan_cases(fsrace: str, campaign: str, shard: str = "") -> list[dict]:
    """The case matrix exactly as the C++ side defines it (`fsrace plan --json`): per case its name (the
    case directory), fs, scenario, rep, seed and device_size_mib. Names are never derived here. With
    shard "I/N", only that shard's cases (the C++ side splits, too)."""
    try:
        r = subprocess.run([fsrace, "plan", campaign, "--json"] + (["--shard", shard] if shard else []),
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise VmError(f"cannot run '{fsrace} plan': {e}; rebuild fsrace (make)")
    if r.returncode != 0:
        err = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise VmError(f"'fsrace plan {campaign}' failed: {err}")
    return json.loads(r.stdout)["cases"]


def default_jobs(cores: int | None = None) -> int:
    """One VM per two host cores (a TCG guest with 2 vCPUs keeps two busy); 1 on a 2-core box."""
    return max(1, (cores or os.cpu_count() or 1) // 2)


def split_jobs(cases: list[dict], jobs: int) -> list[list[dict]]:
    """Round-robin, so each VM gets a mix of filesystems and repetitions; never an empty job."""
    jobs = max(1, min(jobs, len(cases)))
    out = [[] for _ in range(jobs)]
    for i, c in enumerate(cases):
        out[i % jobs].append(c)
    return out


class HangWatch:
    """No progress (the agent's counter unchanged) for timeout_s of host time -> hung."""

    def __init__(self, timeout_s: float, now: float):
        self.timeout_s = timeout_s
        self.last_progress = None
        self.last_change = now

    def feed(self, now: float, progress: int | None) -> None:
        if progress is not None and progress != self.last_progress:
            self.last_progress = progress
            self.last_change = now

    def stalled_for(self, now: float) -> float:
        return now - self.last_change

    def hung(self, now: float) -> bool:
        return self.stalled_for(now) >= self.timeout_s


# QEMU's own line when SIGTERM / SIGINT / SIGHUP reaches it: it shuts the guest down and exits 0.
QEMU_SIGNALLED = re.compile(r"terminating on signal (\d+)(?: from pid (\d+)(?: \(([^)]*)\))?)?")


def signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def classify_end(agent_started: bool, agent_exit: int | None, console: bytes, qemu_rc: int | None,
                 qemu_stderr: str) -> tuple[str, str]:
    """How a guest ended, from what the host can see: (outcome, detail).

    Only QEMU ending on its own after the guest reset (-no-reboot: exit status 0, no signal) with the
    agent started is a guest crash; QEMU killed or terminated by a signal from outside (the OOM killer,
    a user's kill) is a harness failure ("died"), never a kernel finding."""
    if agent_exit is not None:
        return "exited", f"agent exit status {agent_exit}"
    i = console.find(INIT_ERROR)
    if i >= 0:
        return "init-error", console[i + len(INIT_ERROR):].split(b"\n")[0].decode(errors="replace").strip()
    if PANIC in console:
        line = console[console.find(PANIC):].split(b"\n")[0].decode(errors="replace").strip()
        return "crashed", line
    err = [l for l in qemu_stderr.strip().splitlines() if l.strip()]
    if qemu_rc is not None and qemu_rc < 0:
        if -qemu_rc in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            return "died", (f"QEMU was killed by {signal_name(-qemu_rc)} from outside fsrace (the OOM killer "
                            f"or a kill), with no panic in the console")
        return "died", f"QEMU crashed ({signal_name(-qemu_rc)}): {err[-1] if err else 'no message'}"
    m = QEMU_SIGNALLED.search(qemu_stderr)
    if m:
        by = f" from pid {m.group(2)}" + (f" ({m.group(3)})" if m.group(3) else "") if m.group(2) else ""
        return "died", f"QEMU was terminated by {signal_name(int(m.group(1)))}{by}, outside fsrace"
    if not agent_started:
        if qemu_rc not in (0, None) and err:
            return "qemu-failed", f"exit status {qemu_rc}: {err[-1]}"
        return "boot-failed", f"QEMU exited (status {qemu_rc}) before the guest agent started"
    if qemu_rc not in (0, None):
        return "died", f"QEMU exited with status {qemu_rc}: {err[-1] if err else 'no message'}"
    return "crashed", f"the guest reset without a panic message (QEMU status {qemu_rc})"


def restart_plan(outcome: str, cases: list[str], finished: set[str], running: str) -> tuple[str, list[str]]:
    """After one boot of a VM ended: (the case it ended in, the cases a fresh boot runs next).

    The case it ended in is the heartbeat's, if that case had not finished, else the first unfinished
    one (the agent runs its cases in order); "" when every case had finished. Only a guest that hung or
    crashed is restarted, and the case it ended in is not rerun, so each restart leaves one case fewer:
    at most one per case."""
    left = [c for c in cases if c not in finished]
    ended_in = running if running in left else (left[0] if left else "")
    if outcome == "power-cut":  # [vm] power_cut: the next boot verifies the case the cut ended, then goes on
        return ended_in, left
    if outcome not in ("hang", "crashed"):
        return ended_in, []
    return ended_in, [c for c in left if c != ended_in]


# ---- one guest -----------------------------------------------------------------------------------

@dataclasses.dataclass
class Job:
    index: int
    cases: list[dict]
    dir: str              # this boot's result share: <run>/vm<i>, after a restart <run>/vm<i>-boot<k>
    console: str          # <run>/console.log (vm0) or console-vm<i>.log, after a restart console-vm<i>-boot<k>.log
    work: str             # host temp dir: disks, monitor socket
    disks: list[str] = dataclasses.field(default_factory=list)
    pmem: list[str] = dataclasses.field(default_factory=list)  # NVDIMM backing files (the DAX filesystems)
    devices: list[str] = dataclasses.field(default_factory=list)
    boot: int = 0                    # boots of this VM so far - 1 (restarts after a hang / crash)
    boot_cases: list[dict] = dataclasses.field(default_factory=list)  # the cases this boot runs
    boots: list[dict] = dataclasses.field(default_factory=list)       # vm.json records of ended boots
    ended_in: str = ""               # the case this boot ended in
    inst: object = None
    started: float = 0.0
    boot_s: float | None = None
    outcome: str = ""
    detail: str = ""
    guest_exit: int | None = None
    hang: dict | None = None
    last_hb: dict | None = None
    watch: HangWatch | None = None
    scan_off: int = 0
    console_head: bytes = b""
    shown_case: str = ""             # the case the terminal was last told about (progress lines)
    after_cut: str = ""              # [vm] power_cut: the case this boot verifies after the cut that ended the boot before
    cut_at: float | None = None      # monotonic time of the cut (SIGKILL of QEMU)
    shown_done: set = dataclasses.field(default_factory=set)

    def done(self) -> bool:
        return bool(self.outcome)


def write_text(path: str, text: str) -> None:
    """Writes a whole file; the OSError names the file (a failed flush at close does not by itself)."""
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None


def write_atomic(path: str, text: str) -> None:
    """Temp file + rename; the temp file does not outlive a failure."""
    tmp = path + ".tmp"
    try:
        write_text(tmp, text)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def env_error(e: OSError, places: list[tuple[str, str, str]]) -> str:
    """One line for an OSError of the host environment: the file, what went wrong, what to do.
    places: (directory, what it is, the option that moves it) in the order to match."""
    path = os.path.abspath(e.filename) if e.filename else ""
    where, opt = "", ""
    for d, what, o in places:
        if path and (path == d or path.startswith(d.rstrip("/") + "/")):
            where, opt = what, o
            break
    elsewhere = f" or pick another {opt}" if opt else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free space on the filesystem of {where or path}{elsewhere}, then rerun"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"make {where or path} writable{elsewhere}, then rerun"
    else:
        fix = f"check {where or 'the host'}{elsewhere}, then rerun"
    return f"{path or 'VM run'}: {e.strerror or e}{f' (in {where})' if where else ''}: {fix}"


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class VmRun:
    def __init__(self, args):
        self.args = args
        self.run_dir = os.path.abspath(args.run_dir)
        self.top = repo_top()
        self.cache = os.path.join(self.top, ".cache")
        self.stop = False
        self.jobs: list[Job] = []
        self.made_dirs: list[str] = []  # share directories this run created
        self.status: VmStatus | None = None  # the live line on a terminal, from make_jobs on
        self.say = (lambda m: None) if args.quiet else self.say_line

    def say_line(self, m: str):
        if self.status:
            self.status.line(f"fsrace: {m}")
        else:
            print(f"fsrace: {m}", file=sys.stderr, flush=True)

    # -- setup --
    def prepare(self):
        w = self.args.workdir
        if not os.path.isdir(w):
            raise VmError(f"work directory {w} does not exist: pass an existing directory with --workdir")
        if not os.access(w, os.W_OK | os.X_OK):
            raise VmError(f"work directory {w} is not writable: pass a writable directory with --workdir")
        with open(os.path.join(self.run_dir, "campaign.toml"), "rb") as f:
            self.camp = tomllib.load(f)
        c = self.camp["campaign"]
        self.fs_types = list(c["filesystems"])
        self.vmcfg = self.camp.get("vm", {})
        fsrace = os.path.realpath(self.args.fsrace)
        self.keep = guest_keep_dir(fsrace)
        if self.keep is None and fsrace.startswith(tuple(p + "/" for p in GUEST_HIDDEN)):
            raise VmError(f"the fsrace binary {fsrace} lives under a path the guest does not see from the host "
                          f"({', '.join(GUEST_HIDDEN)}): build it elsewhere")
        self.fsrace = fsrace
        self.kernel = kernel_mod.resolve(self.args.kernel, self.args.modules, self.fs_types, self.cache,
                                         verbose=not self.args.quiet)
        self.initrd = initramfs.build(self.kernel, self.fs_types, os.path.join(self.cache, "initramfs"))
        accel, why = detect_accel(self.kernel.boot_path, self.initrd, os.path.join(self.cache, "vm"),
                                  os.environ.get("FSRACE_ACCEL"))
        self.accel, self.accel_note = accel, why
        mem = int(self.vmcfg.get("memory_mib", 1024))
        if any(f in kernel_mod.CLUSTER_FS for f in self.fs_types) and mem < kernel_mod.CEPH_MIN_MEMORY_MIB:
            self.say(f"guest memory {mem} MiB -> {kernel_mod.CEPH_MIN_MEMORY_MIB} MiB: the campaign has ceph, whose "
                     f"cluster daemons run inside the guest")
            mem = kernel_mod.CEPH_MIN_MEMORY_MIB
        self.backend = QemuBackend(accel, int(self.vmcfg.get("cpus", 2)), mem)
        self.pmem_mode = str(self.vmcfg.get("pmem", "nvdimm"))
        if any(f in kernel_mod.PMEM_FILESYSTEMS for f in self.fs_types):
            if self.pmem_mode == "nvdimm" and not self.backend.has_nvdimm():
                if self.vmcfg.get("power_cut"):
                    raise VmError(f"{self.backend.qemu} has no nvdimm device and [vm] power_cut needs NVDIMMs on host files "
                                  "(memmap= pmem is guest RAM and does not survive the VM): use a QEMU with NVDIMM support")
                self.say(f"{self.backend.qemu} has no nvdimm device: the DAX filesystems get memmap= legacy pmem "
                         "instead (guest RAM: lost at every boot)")
                self.pmem_mode = "memmap"
            elif self.pmem_mode == "memmap":
                self.say("DAX filesystems on memmap= legacy pmem ([vm] pmem = \"memmap\": guest RAM reserved for the pmem driver)")
        self.isolation = plan_isolation([self.fsrace], self.backend.help_text(), self.run_dir)
        self.say(f"guest isolation: {self.isolation.note}")
        self.say(f"kernel {self.kernel.image.release} ({self.kernel.boot_kind}), accel {accel} ({why})")

    def shard_record(self) -> dict:
        sh = getattr(self.args, "shard", "")
        if not sh:
            return {}
        i, n = (int(x) for x in sh.split("/"))
        return {"shard": {"index": i, "total": n, "matrix_cases": getattr(self, "matrix_cases", 0)}}

    def explore(self) -> bool:
        return bool(getattr(self.args, "explore", ""))

    def make_jobs(self):
        if self.explore():
            # fsrace explore: one guest, no case list (the agent chooses its rounds), a disk for every
            # filesystem the campaign names.
            cases, groups = [], [[]]
            self.matrix_cases = 0
            fs_cfg = self.camp.get("fs", {})
            sizes = {f: int(fs_cfg.get(f, {}).get("device_size_mib", 0)) for f in self.fs_types}
        else:
            cases = plan_cases(self.fsrace, os.path.join(self.run_dir, "campaign.toml"), getattr(self.args, "shard", ""))
            self.matrix_cases = len(plan_cases(self.fsrace, os.path.join(self.run_dir, "campaign.toml"))) if getattr(self.args, "shard", "") else len(cases)
            n = self.args.jobs or default_jobs()
            groups = split_jobs(cases, n)
            sizes = {c["fs"]: int(c.get("device_size_mib", 0)) for c in cases}
        for i, g in enumerate(groups):
            d = os.path.join(self.run_dir, f"vm{i}")
            if not os.path.isdir(d):
                os.makedirs(d)
                self.made_dirs.append(d)
            work = tempfile.mkdtemp(prefix=f"fsrace-vm{i}.", dir=self.args.workdir)
            console = os.path.join(self.run_dir, "console.log" if i == 0 else f"console-vm{i}.log")
            j = Job(i, g, d, console, work)
            self.jobs.append(j)  # from here on, cleanup removes its work dir and disk images
            fs_needed = [f for f in self.fs_types if (self.explore() or any(c["fs"] == f for c in g))
                         and f not in kernel_mod.CLUSTER_FS]
            for f in fs_needed:
                pmem = f in kernel_mod.PMEM_FILESYSTEMS
                img = os.path.join(work, f"{f}.{'pmem' if pmem else 'img'}")
                try:
                    with open(img, "wb") as fh:
                        fh.truncate(sizes[f] << 20)  # sparse
                except OSError as e:
                    raise OSError(e.errno, e.strerror, img) from None
                if pmem:  # an NVDIMM: its region's namespace becomes /dev/pmemN in NVDIMM order
                    j.devices.append(f"{f}=/dev/pmem{len(j.pmem)}")
                    j.pmem.append(img)
                else:
                    j.devices.append(f"{f}=/dev/vd{chr(ord('a') + len(j.disks))}")
                    j.disks.append(img)
            self.setup_boot(j, g)
        if not self.args.quiet:
            dur = float(self.camp["campaign"].get("duration_s", 0))
            planned = (float(self.args.explore.split(",")[0]) if self.explore()
                       else dur * max((len(j.cases) for j in self.jobs), default=0))
            self.status = VmStatus(sum(len(j.cases) for j in self.jobs), planned, stderr_is_terminal())

    def setup_boot(self, j: Job, cases: list[dict]):
        """The share, agent.sh and QEMU instance of one boot of VM j (the disks stay: every case runs mkfs)."""
        j.boot_cases = cases
        with open(os.path.join(self.run_dir, "campaign.toml")) as f:
            write_text(os.path.join(j.dir, "campaign.in.toml"), f.read())
        argv = [self.fsrace, "agent", f"{GUEST_OUT}/campaign.in.toml", "--out", GUEST_OUT]
        if j.after_cut:
            argv += ["--after-power-cut", j.after_cut]
        argv += ["--explore", self.args.explore] if self.explore() else ["--cases", ",".join(c["name"] for c in cases)]
        for dv in j.devices:
            argv += ["--device", dv]
        if self.args.quiet:
            argv.append("--quiet")
        if j.boot:
            argv.append("--no-test-hook")  # a test hook stands for one failure: not again in the restarted VM
        write_text(os.path.join(j.dir, "agent.sh"),
                   "# written by vm/runner.py: the guest's init runs this inside the chroot\n"
                   "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8\n"
                   "cd /tmp\n"
                   f"exec {shlex.join(argv)}\n")
        append = f"fsrace.keep={self.keep}" if self.keep else ""
        give_share(j.dir, self.isolation)
        j.inst = self.backend.create(InstanceSpec(self.kernel.boot_path, self.initrd, append, j.dir, j.disks,
                                                  j.console, j.work, pmem=j.pmem, isolation=self.isolation,
                                                  pmem_mode=self.pmem_mode))

    # -- watching --
    def start(self, j: Job):
        j.inst.start()
        j.started = time.monotonic()
        j.watch = HangWatch(float(self.vmcfg.get("hang_timeout_s", 120)), j.started)
        again = f" again (boot {j.boot})" if j.boot else ""
        what = (f"explore rounds, budget {self.args.explore.split(',')[0]} s" if self.explore()
                else f"{len(j.boot_cases)} case(s): {', '.join(c['name'] for c in j.boot_cases)}")
        self.say(f"vm{j.index}: booting{again} ({what})")
        if self.status:
            self.status.booting(j.index)

    def step(self, j: Job, now: float):
        new = j.inst.read_console(j.scan_off)
        if new:
            j.console_head += new
            j.scan_off += len(new)
        if j.boot_s is None and AGENT_START in j.console_head:
            j.boot_s = now - j.started
            j.watch.feed(now, -1)
            self.say(f"vm{j.index}: QEMU start -> agent start {j.boot_s:.2f} s")
        rc = j.inst.poll()
        if rc is not None:
            self.finish(j, rc)
            return
        if j.boot_s is None:
            if INIT_ERROR in j.console_head:
                return  # init prints and reboots; QEMU exits on its own
            if now - j.started > float(self.vmcfg.get("boot_timeout_s", 300)):
                j.outcome = "boot-failed"
                j.detail = f"the guest agent did not start within boot_timeout_s = {self.vmcfg.get('boot_timeout_s', 300)} s"
                j.inst.kill()
            return
        req = read_json(os.path.join(j.dir, "power-cut-request.json"))
        if isinstance(req, dict) and req.get("case"):
            # [vm] power_cut: the guest wrote the case's files and waits; the filesystem is still mounted.
            j.inst.kill(hard=True)
            j.cut_at = now
            j.outcome, j.detail = "power-cut", f"power cut after the race of {req['case']} (QEMU killed with SIGKILL)"
            j.last_hb = read_json(os.path.join(j.dir, "heartbeat.json")) or j.last_hb
            if j.last_hb is not None:
                j.last_hb["case"] = req["case"]
            self.say(f"vm{j.index}: {j.detail}")
            return
        hb = read_json(os.path.join(j.dir, "heartbeat.json"))
        if hb:
            j.last_hb = hb
            j.watch.feed(now, hb.get("progress"))
            self.progress(j, hb)
            if self.status and isinstance(hb.get("case"), str):
                self.status.heartbeat(j.index, hb["case"], str(hb.get("phase", "")), hb.get("progress"), hb.get("uptime_s"))
        if j.watch.hung(now):
            stalled = j.watch.stalled_for(now)
            self.say(f"vm{j.index}: no progress for {stalled:.0f} s: asking the guest for task states (sysrq-w, sysrq-t)")
            off = j.inst.console_size()
            j.inst.request_task_states()
            j.inst.kill()
            j.hang = {"no_progress_s": stalled, "timeout_s": j.watch.timeout_s, "sysrq_console_offset": off}
            j.outcome, j.detail = "hang", f"no progress for {stalled:.1f} s"

    def progress(self, j: Job, hb: dict):
        """One line when a case starts and one when it is done, with its findings: a long VM campaign is
        not silent between boot and the summary (the guest's heartbeat names the case and its phase)."""
        case, phase = hb.get("case", ""), hb.get("phase", "")
        if not isinstance(case, str) or not case:
            return
        names = [c["name"] for c in j.boot_cases]
        if case != j.shown_case:
            if j.shown_case:
                self.case_done(j, j.shown_case, names)
            j.shown_case = case
            k = names.index(case) + 1 if case in names else 0
            self.say(f"vm{j.index}: case {k}/{len(names)} {case}: {phase} ({time.time() - self.t0:.0f} s into the run)")
        if phase == "done":
            self.case_done(j, case, names)

    def case_done(self, j: Job, case: str, names: list):
        if case in j.shown_done:
            return
        doc = read_json(os.path.join(j.dir, case, "findings.json"))
        if not isinstance(doc, dict):
            return  # not written yet (or the case died): the summary tells
        j.shown_done.add(case)
        by = doc.get("findings_by_class", {}) if isinstance(doc.get("findings_by_class"), dict) else {}
        if self.status:
            self.status.case_done(j.index, case, by)
        n = sum(v for v in by.values() if isinstance(v, int))
        what = (f"{n} finding(s): " + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))) if n else "no finding"
        k = names.index(case) + 1 if case in names else 0
        self.say(f"vm{j.index}: case {k}/{len(names)} {case}: done, {what}")

    def finish(self, j: Job, rc: int):
        exit_txt = None
        try:
            with open(os.path.join(j.dir, "agent-exit")) as f:
                exit_txt = f.read().strip()
        except OSError:
            pass
        j.guest_exit = int(exit_txt) if exit_txt and exit_txt.lstrip("-").isdigit() else None
        hb = read_json(os.path.join(j.dir, "heartbeat.json"))
        if hb:
            j.last_hb = hb
        console = j.inst.read_console(0)
        if j.guest_exit is None:  # the share could not take agent-exit (full results filesystem)
            m = AGENT_EXIT.search(console)
            j.guest_exit = int(m.group(1)) if m else None
        if j.shown_case:
            self.case_done(j, j.shown_case, [c["name"] for c in j.boot_cases])
        j.outcome, j.detail = classify_end(j.boot_s is not None, j.guest_exit, console, rc, j.inst.stderr_text())
        if self.status:
            self.status.vm_ended(j.index)
        self.say(f"vm{j.index}: {j.outcome} ({j.detail})")

    def end_boot(self, j: Job):
        """Once per boot, when it ended: which case it ended in; after a hang or a crash, a fresh boot of
        the VM for the cases left (as syzkaller restarts its VMs), the ended boot's records kept."""
        guest = read_json(os.path.join(j.dir, "findings.json"))
        finished = {c.get("case", "") for c in guest.get("cases", [])} if isinstance(guest, dict) else set()
        j.ended_in, rest = restart_plan(j.outcome, [c["name"] for c in j.boot_cases], finished,
                                        (j.last_hb or {}).get("case", ""))
        if not rest or self.stop:
            return
        cut = j.outcome == "power-cut"
        if cut:
            self.say(f"vm{j.index}: booting again on the same disks to verify {j.ended_in} after the power cut")
        else:
            self.say(f"vm{j.index}: {j.outcome} in case {j.ended_in}: restarting the VM for the {len(rest)} case(s) left")
        j.boots.append(self.boot_record(j))
        j.inst.cleanup()
        j.boot += 1
        name = f"vm{j.index}-boot{j.boot}"
        old_dir, j.dir = j.dir, os.path.join(self.run_dir, name)
        os.makedirs(j.dir, exist_ok=True)
        j.after_cut = j.ended_in if cut else ""
        if cut:  # the case's files go on in the new boot's share: it appends the reads after the cut
            dst = os.path.join(j.dir, j.ended_in)
            shutil.copytree(os.path.join(old_dir, j.ended_in), dst, symlinks=True)
            if self.isolation.user:  # the guest writes it as the QEMU user, as it wrote the original
                take_back(dst, self.isolation.uid, self.isolation.gid)
        j.console = os.path.join(self.run_dir, f"console-{name}.log")
        j.boot_s, j.outcome, j.detail, j.guest_exit, j.hang, j.last_hb = None, "", "", None, None, None
        j.scan_off, j.console_head, j.ended_in, j.shown_case = 0, b"", "", ""
        j.cut_at = None
        self.setup_boot(j, [c for c in j.boot_cases if c["name"] in rest])
        self.start(j)

    def boot_record(self, j: Job) -> dict:
        return {"boot": j.boot, "dir": os.path.basename(j.dir), "console": os.path.basename(j.console),
                "cases": [c["name"] for c in j.boot_cases], "case": j.ended_in, "qemu_argv": j.inst.argv(),
                "boot_s": j.boot_s, "outcome": j.outcome, "detail": j.detail, "guest_exit": j.guest_exit,
                "qemu_stderr": j.inst.stderr_text()[-4000:], "hang": j.hang, "last_heartbeat": j.last_hb,
                "after_power_cut": j.after_cut,
                "power_cut_s": (j.cut_at - j.started) if j.cut_at is not None else None}

    def loop(self):
        for j in self.jobs:
            self.start(j)
        while not all(j.done() for j in self.jobs):
            if self.stop:
                for j in self.jobs:
                    if not j.done():
                        j.inst.kill()
                        j.outcome, j.detail = "interrupted", "interrupted on the host (SIGINT/SIGTERM)"
                        self.end_boot(j)
                break
            now = time.monotonic()
            for j in self.jobs:
                if not j.done():
                    self.step(j, now)
                    if j.done():
                        self.end_boot(j)
            if self.status:
                self.status.tick(now)
            time.sleep(POLL_S)
        if self.status:
            self.status.close()

    # -- results --
    def collect(self):
        """Case directories move up to <run>/<case>, as in host mode; vm.json records the VM facts."""
        for j in self.jobs:
            j.boots.append(self.boot_record(j))
            for b in j.boots:
                names = list(b["cases"])
                if self.explore():  # the rounds the guest chose, and its explore.json / reproducers
                    bdir = os.path.join(self.run_dir, b["dir"])
                    g = read_json(os.path.join(bdir, "findings.json"))
                    names += [c.get("case", "") for c in (g.get("cases", []) if isinstance(g, dict) else [])]
                    for f in os.listdir(bdir) if os.path.isdir(bdir) else []:
                        if (f == "explore.json" or (f.startswith("repro-") and f.endswith(".toml"))) \
                                and not os.path.exists(os.path.join(self.run_dir, f)):
                            os.replace(os.path.join(bdir, f), os.path.join(self.run_dir, f))
                for name in names:
                    if not name or (b.get("outcome") == "power-cut" and name == b.get("case")):
                        continue  # the next boot has this case's directory, with the reads after the cut
                    src = os.path.join(self.run_dir, b["dir"], name)
                    dst = os.path.join(self.run_dir, name)
                    if os.path.isdir(src) and not os.path.exists(dst):
                        os.replace(src, dst)
        c = self.camp["campaign"]
        k = self.kernel
        doc = {
            "schema": "fsrace-vm/1",
            "status": "interrupted" if self.stop else "complete",
            "run": {"id": self.args.run_id or os.path.basename(self.run_dir), "campaign": c["name"],
                    "seed": c["seed"], "duration_s": c["duration_s"], "source": self.args.source or "",
                    "started": time.strftime("%Y%m%d-%H%M%S", time.localtime(self.t0)),
                    **self.shard_record()},
            "kernel": {"image": os.path.abspath(k.image.path), "release": k.image.release, "version": k.image.version_line,
                       "boot": k.boot_kind, "boot_path": os.path.abspath(k.boot_path), "modules": k.modules_dir,
                       "config": k.config_source, "features": k.features},
            "initramfs": self.initrd,
            "accel": self.accel, "accel_note": self.accel_note,
            "cpus": self.backend.cpus, "memory_mib": self.backend.memory_mib, "jobs": len(self.jobs),
            "pmem": self.pmem_mode if any(f in kernel_mod.PMEM_FILESYSTEMS for f in self.fs_types) else None,
            "isolation": self.isolation.record(),
            "vms": [],
        }
        for j in self.jobs:
            doc["vms"].append({"index": j.index, "cases": [c["name"] for c in j.cases],
                               "case_specs": {c["name"]: {"fs": c["fs"], "scenario": c["scenario"], "rep": c["rep"]} for c in j.cases},
                               "boots": j.boots})
        write_atomic(os.path.join(self.run_dir, "vm.json"), json.dumps(doc, indent=2))

    def cleanup(self):
        if self.status:
            self.status.close()
        for j in self.jobs:
            if j.inst:
                j.inst.cleanup()
            shutil.rmtree(j.work, ignore_errors=True)
        iso = getattr(self, "isolation", None)
        if iso and iso.user and os.path.isdir(self.run_dir):
            st = os.stat(self.run_dir)
            take_back(self.run_dir, st.st_uid, st.st_gid)  # what the guest wrote as the QEMU user

    def discard_unbooted(self):
        """Nothing booted: remove what this run wrote, so that no run directory holds only its campaign."""
        for d in self.made_dirs:
            shutil.rmtree(d, ignore_errors=True)
        try:
            if sorted(os.listdir(self.run_dir)) == ["campaign.toml"]:
                shutil.rmtree(self.run_dir, ignore_errors=True)
        except OSError:
            pass

    def env_error(self, e: OSError) -> str:
        return env_error(e, [(self.run_dir, "the run directory", "--results / --run-dir"),
                             (os.path.abspath(self.args.workdir), "the work directory", "--workdir"),
                             (self.cache, "fsrace's cache (.cache in the repository)", "")])


def run(args) -> int:
    r = VmRun(args)
    r.t0 = time.time()

    def on_signal(sig, frame):
        r.stop = True
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        try:
            qemu_binary()  # before the kernel is resolved or anything built: a missing QEMU is the first thing to say
            r.prepare()
            r.make_jobs()
        except (VmError, OSError):
            r.cleanup()
            r.discard_unbooted()  # nothing ran: no run directory that holds only the campaign we wrote
            raise
        r.loop()
        r.collect()
    except OSError as e:
        # A host environment failure (full or read-only results / work filesystem, ...): one line, exit
        # 2; QEMU and the disk images go in cleanup, what the run wrote so far stays.
        raise VmError(r.env_error(e)) from None
    finally:
        r.cleanup()
    try:
        rc = subprocess.call([r.fsrace, "vm-report", r.run_dir])
    except OSError as e:
        raise VmError(f"cannot run {r.fsrace} vm-report: {e.strerror}: rebuild fsrace (make build)") from None
    if r.explore() and not args.quiet:
        ex = read_json(os.path.join(r.run_dir, "explore.json"))
        if isinstance(ex, dict):
            rows = ex.get("table", {}).get("rows", [])
            print(f"fsrace explore: {len(ex.get('rounds', []))} round(s) in the guest in {ex.get('elapsed_s', 0):.0f} s "
                  f"(budget {ex.get('budget_s', 0):.0f} s, boot not counted); the arms by time:")
            for row in rows[:20]:
                f = ", ".join(f"{k} {v}" for k, v in row.get("findings", {}).items()) or "-"
                print(f"  {row['arm']:<40} {row['rounds']:>3} round(s) {row['seconds']:>6.1f} s  score {row['mean_score']:.3f}  {f}")
            for arm, fn in ex.get("reproducers", {}).items():
                print(f"reproducer for {arm}: fsrace run {os.path.join(r.run_dir, fn)} --kernel {args.kernel}")
    return 130 if r.stop else rc
