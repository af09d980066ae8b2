"""The VM backend: QEMU under KVM or TCG behind one small interface (STYLE.md, syzkaller's vm/ seam).

    backend = QemuBackend(accel, cpus, memory_mib)
    inst = backend.create(InstanceSpec(...)); inst.start()
    inst.poll() / inst.console_size() / inst.read_console(off) / inst.request_task_states() / inst.kill()

The campaign runner (runner.py) only uses that interface; it never learns which accelerator runs the
guest. Acceleration: KVM only when a probe boot under KVM reaches the guest's init within a few
seconds (a /dev/kvm node proves nothing: on nested or restricted hosts guests hang or QEMU aborts);
otherwise TCG (multi-threaded, -cpu max). The probe result is cached per host boot.
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import pwd
import stat
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .errors import VmError
from .initramfs import MSIZE, OUT_TAG, ROOT_TAG

QEMU = "qemu-system-x86_64"
PROBE_TIMEOUT_S = 8.0
# Boot parameters: serial console, panic -> immediate reset (QEMU exits with -no-reboot), an oops is a
# panic (the guest state after an oops is not trustworthy), no speculation mitigations (TCG pays for
# them). tsc=reliable: under TCG the fast PIT calibration fails and the TSC is calibrated against the
# HPET; without ACPI there is no HPET and the guest falls back to a jiffies clock (4 ms steps), which
# breaks the oracle's op ordering. So ACPI stays on (it costs ~0.5-1 s of boot) and the TSC is the
# clocksource (vDSO clock_gettime; consistent across vCPUs under TCG).
BASE_APPEND = "console=ttyS0 quiet panic=-1 oops=panic tsc=reliable mitigations=off i8042.noaux fsrace.guest=1"


def qemu_binary() -> str:
    q = shutil.which(QEMU)
    if not q:
        raise VmError(f"{QEMU} is missing: run 'make deps' (installs qemu-system-x86)")
    return q


# What the guest may reach on the host. QEMU started as root with 9p security_model=none would open every
# host file for the guest with root's rights (the root share is read-only, but /etc/shadow and /root are
# readable) and create what the guest asks for on the result share as root (setuid-root files, device
# nodes). So when fsrace runs as root, QEMU drops to an unprivileged user right before the guest starts
# (-runas): the disks, NVDIMM files, console and monitor are opened before that, the 9p exports' roots
# too, and every file access of the guest after it has that user's rights. The result share is handed to
# that user while the VM runs and back to the run directory's owner after it. Plus QEMU's seccomp
# sandbox (no spawning, no obsolete syscalls, no resource-control calls).
GUEST_USER = "nobody"
SANDBOX = "on,obsolete=deny,spawn=deny,resourcecontrol=deny"


@dataclasses.dataclass
class Isolation:
    user: str | None            # -runas USER, or None: QEMU keeps the invoking user's rights
    uid: int = -1
    gid: int = -1
    sandbox: bool = False
    note: str = ""              # what the guest can and cannot reach, in one sentence

    def record(self) -> dict:
        return {"qemu_user": self.user or pwd.getpwuid(os.geteuid()).pw_name, "sandbox": SANDBOX if self.sandbox else "",
                "note": self.note}


def _world_reachable(path: str) -> str | None:
    """None if an unprivileged user can reach `path` (every directory above it searchable by others, the
    file readable and, if executable, executable by others); else the first path component that is not."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(2, len(parts)):
        d = "/".join(parts[:i])
        try:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return d
        except OSError:
            return d
    try:
        m = os.stat(path).st_mode
    except OSError:
        return path
    need = stat.S_IROTH | (stat.S_IXOTH if m & stat.S_IXUSR else 0)
    return None if (m & need) == need else path


def plan_isolation(guest_reads: list[str], qemu_help: str, share_parent: str | None = None) -> Isolation:
    """How QEMU is confined, from who runs fsrace, what the guest must read from the host root (the
    fsrace binary: the guest runs it) and whether the result shares (made under `share_parent`) can be
    handed to the QEMU user."""
    sandbox = "-sandbox" in qemu_help
    if os.geteuid() != 0:
        return Isolation(None, sandbox=sandbox, note="QEMU runs as the invoking user: the guest reads the host files that user "
                         "can read (the root share is read-only) and writes only its result share")
    if "-runas" not in qemu_help:
        return Isolation(None, sandbox=sandbox, note="this QEMU has no -runas: QEMU runs as root and the guest can read every "
                         "host file (read-only); it writes only its result share")
    try:
        pw = pwd.getpwnam(GUEST_USER)
    except KeyError:
        return Isolation(None, sandbox=sandbox, note=f"no user {GUEST_USER!r} on this host: QEMU runs as root and the guest can "
                         "read every host file (read-only); it writes only its result share")
    for p in guest_reads:
        bad = _world_reachable(p)
        if bad:
            return Isolation(None, sandbox=sandbox, note=f"QEMU runs as root, so the guest can read every host file (read-only): "
                             f"{bad} is not reachable for an unprivileged user, and the guest must run {p} "
                             f"(chmod o+rx {bad} lets fsrace run QEMU as {GUEST_USER})")
    if share_parent and not shares_can_change_owner(share_parent, Isolation(GUEST_USER, pw.pw_uid, pw.pw_gid)):
        return Isolation(None, sandbox=sandbox, note=f"QEMU runs as root, so the guest can read every host file (read-only): "
                         f"the results directory {share_parent} does not let root hand a directory to {GUEST_USER} "
                         f"(chown refused there, e.g. NFS root_squash); put --results on a local filesystem to confine the guest")
    return Isolation(GUEST_USER, pw.pw_uid, pw.pw_gid, sandbox,
                     f"QEMU runs as {GUEST_USER} after opening the disks: the guest reads only world-readable host files "
                     f"(the root share is read-only) and writes only its result share, as {GUEST_USER} (no setuid-root "
                     f"files, no device nodes)")


def shares_can_change_owner(parent: str, iso: Isolation) -> bool:
    """Whether a directory made under `parent` can be given to the QEMU user (not on a root-squashed or
    ownerless filesystem); tried on a scratch directory that is removed again."""
    try:
        d = tempfile.mkdtemp(prefix=".fsrace-chown.", dir=parent)
    except OSError:
        return False
    try:
        os.chown(d, iso.uid, iso.gid)
        return os.stat(d).st_uid == iso.uid
    except OSError:
        return False
    finally:
        shutil.rmtree(d, ignore_errors=True)


def give_share(path: str, iso: Isolation):
    """The result share belongs to the QEMU user while the VM runs (the guest writes it as that user)."""
    if iso.user:
        os.chown(path, iso.uid, iso.gid)


def take_back(tree: str, uid: int, gid: int):
    """After the VM: everything in `tree` to the run directory's owner (chown by root also clears any
    setuid / setgid bit the guest set)."""
    for root, dirs, files in os.walk(tree):
        for n in [root] + [os.path.join(root, f) for f in files]:
            try:
                if os.lstat(n).st_uid != uid:
                    os.lchown(n, uid, gid)
            except OSError:
                pass


def _pdeathsig():
    """Runs in the QEMU child before exec: die with the runner, never outlive it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclasses.dataclass
class InstanceSpec:
    kernel: str                 # -kernel (PVH vmlinux or bzImage)
    initrd: str
    append: str                 # extra kernel parameters
    share: str                  # host directory exported read-write as the result share
    disks: list[str]            # raw image files -> virtio-blk vda, vdb, ... (in this order)
    console: str                # serial console log file (always written)
    workdir: str                # monitor socket and QEMU's stderr live here
    root_share: bool = True     # export the host's / read-only as the guest root
    isolation: Isolation | None = None
    pmem: list[str] = dataclasses.field(default_factory=list)  # files -> NVDIMMs (pmem0, pmem1, ... in order)
    pmem_mode: str = "nvdimm"   # or "memmap": the same sizes as memmap= legacy regions of guest RAM (files unused)


MEMMAP_ALIGN_MIB = 128  # memory section size: each legacy region starts and ends on one, with one free between


def memmap_layout(memory_mib: int, sizes_mib: list[int]) -> tuple[int, list[tuple[int, int]]]:
    """memmap= legacy pmem: (guest RAM in MiB to give QEMU, [(offset MiB, size MiB)] per region). The regions
    sit above the guest's own memory_mib, section-aligned, a section apart and below a free top section
    (adjacent ranges would merge into one region; SeaBIOS reserves the top 128 KiB of RAM, which cut the
    last region short: "misaligned, unable to map"). All of it must stay below the 32-bit PCI hole of QEMU's pc machine (3 GiB)."""
    up = lambda v: -(-v // MEMMAP_ALIGN_MIB) * MEMMAP_ALIGN_MIB
    off, regions = up(memory_mib), []
    for s in sizes_mib:
        regions.append((off, up(s)))
        off += up(s) + MEMMAP_ALIGN_MIB
    total = off if regions else memory_mib  # a free section on top too: the firmware keeps the last KiB of RAM
    if total > 3072:
        raise VmError(f"memmap= pmem needs {total} MiB of guest RAM below 4 GiB (memory_mib {memory_mib} + the DAX "
                      f"devices): lower [vm] memory_mib or device_size_mib of the DAX filesystems, or use pmem = \"nvdimm\"")
    return total, regions


class QemuInstance:
    def __init__(self, backend: "QemuBackend", spec: InstanceSpec):
        self.b = backend
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.monitor_path = os.path.join(spec.workdir, "monitor.sock")
        self.stderr_path = os.path.join(spec.workdir, "qemu-stderr.log")

    def argv(self) -> list[str]:
        s = self.spec
        mem = str(self.b.memory_mib)
        append = s.append
        memmap = bool(s.pmem) and s.pmem_mode == "memmap"
        if memmap:
            # Legacy pmem: guest RAM reserved on the kernel command line (e820 type 12), /dev/pmemN by nd_e820.
            total, regions = memmap_layout(self.b.memory_mib, [os.path.getsize(p) >> 20 for p in s.pmem])
            mem = str(total)
            append = " ".join([append] + [f"memmap={size}M!{off}M" for off, size in regions]).strip()
        elif s.pmem:
            # NVDIMMs live in the hotplug memory area: slots and maxmem make room for them (their size is
            # not guest RAM). Each is a host file mapped shared, so what the guest stored survives QEMU.
            total = sum(os.path.getsize(p) for p in s.pmem) >> 20
            mem = f"{self.b.memory_mib},slots={len(s.pmem)},maxmem={self.b.memory_mib + total}M"
        a = [self.b.qemu, "-nodefaults", "-no-user-config", "-display", "none",
             "-machine", "pc,nvdimm=on" if s.pmem and not memmap else "pc",
             *self.b.accel_args(), "-smp", str(self.b.cpus), "-m", mem,
             "-kernel", s.kernel, "-initrd", s.initrd, "-append", f"{BASE_APPEND} {append}".strip(),
             "-chardev", f"file,id=con,path={s.console}", "-serial", "chardev:con",
             "-monitor", f"unix:{self.monitor_path},server=on,wait=off",
             "-nic", "none", "-no-reboot"]
        iso = s.isolation
        if iso and iso.user:
            a += ["-runas", iso.user]
        if iso and iso.sandbox:
            a += ["-sandbox", SANDBOX]
        if s.root_share:
            a += ["-virtfs", f"local,path=/,mount_tag={ROOT_TAG},security_model=none,readonly=on,multidevs=remap"]
        if s.share:
            a += ["-virtfs", f"local,path={s.share},mount_tag={OUT_TAG},security_model=none,multidevs=remap"]
        for i, d in enumerate(s.disks):
            a += ["-drive", f"file={d},if=none,id=disk{i},format=raw,cache=none,aio=threads",
                  "-device", f"virtio-blk-pci,drive=disk{i},serial=fsrace{i}"]
        for i, p in enumerate([] if memmap else s.pmem):
            a += ["-object", f"memory-backend-file,id=pmem{i},share=on,mem-path={p},size={os.path.getsize(p)}",
                  "-device", f"nvdimm,id=nvdimm{i},memdev=pmem{i}"]
        return a

    def start(self) -> None:
        open(self.spec.console, "ab").close()
        self.started_at = time.monotonic()
        with open(self.stderr_path, "wb") as err:
            try:
                self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                             start_new_session=True, preexec_fn=_pdeathsig)
            except OSError as e:
                raise VmError(f"cannot start {self.b.qemu}: {e.strerror}; run 'make deps'") from None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stderr_text(self) -> str:
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def console_size(self) -> int:
        try:
            return os.path.getsize(self.spec.console)
        except OSError:
            return 0

    def read_console(self, offset: int) -> bytes:
        try:
            with open(self.spec.console, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""

    def monitor(self, command: str, timeout=3.0) -> str:
        """One HMP command over the monitor socket (works while the guest kernel is wedged)."""
        out = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(self.monitor_path)
                s.sendall(command.encode() + b"\n")
                end = time.monotonic() + 0.5
                while time.monotonic() < end:
                    try:
                        chunk = s.recv(4096)
                    except socket.timeout:
                        break
                    if not chunk:
                        break
                    out += chunk
        except OSError as e:
            return f"monitor error: {e}"
        return out.decode(errors="replace")

    def sysrq(self, key: str) -> None:
        """Magic SysRq through the emulated keyboard: handled in the guest kernel's interrupt path, so
        it answers even when every user task is stuck."""
        self.monitor(f"sendkey alt-sysrq-{key}")

    def request_task_states(self, settle_s: float = 3.0, max_wait_s: float = 30.0) -> None:
        """sysrq-w (blocked tasks) then sysrq-t (all tasks) into the console; waits until it is quiet."""
        for key in ("w", "t"):
            self.sysrq(key)
            last, quiet_since, end = self.console_size(), time.monotonic(), time.monotonic() + max_wait_s
            while time.monotonic() < end and self.poll() is None:
                time.sleep(0.2)
                size = self.console_size()
                if size != last:
                    last, quiet_since = size, time.monotonic()
                elif time.monotonic() - quiet_since >= settle_s:
                    break

    def kill(self, hard: bool = False) -> None:
        """Stops QEMU: SIGTERM, then SIGKILL after 3 s; hard: SIGKILL at once (a power cut: QEMU gets no
        chance to do anything more for the guest)."""
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            if hard:
                self.proc.kill()
                self.proc.wait()
                return
            self.proc.terminate()
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        except ProcessLookupError:
            pass

    def cleanup(self) -> None:
        self.kill()
        for p in (self.monitor_path,):
            try:
                os.unlink(p)
            except OSError:
                pass


class QemuBackend:
    def __init__(self, accel: str, cpus: int, memory_mib: int):
        self.qemu = qemu_binary()
        self._help: str | None = None
        self.accel = accel
        self.cpus = cpus
        self.memory_mib = memory_mib

    def accel_args(self) -> list[str]:
        if self.accel == "kvm":
            return ["-accel", "kvm", "-cpu", "host"]
        return ["-accel", "tcg,thread=multi", "-cpu", "max"]

    def help_text(self) -> str:
        if self._help is None:
            try:
                self._help = subprocess.run([self.qemu, "-help"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.TimeoutExpired):
                self._help = ""
        return self._help

    def has_nvdimm(self) -> bool:
        """Whether this QEMU can emulate NVDIMMs (-device nvdimm)."""
        if getattr(self, "_nvdimm", None) is None:
            try:
                out = subprocess.run([self.qemu, "-device", "help"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.TimeoutExpired):
                out = ""
            self._nvdimm = '"nvdimm"' in out
        return self._nvdimm

    def create(self, spec: InstanceSpec) -> QemuInstance:
        return QemuInstance(self, spec)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def detect_accel(kernel: str, initrd: str, cache_dir: str, force: str | None = None) -> tuple[str, str]:
    """('kvm'|'tcg', why). KVM only if a probe boot under KVM reaches init within PROBE_TIMEOUT_S."""
    if force not in (None, "", "tcg", "kvm"):
        raise VmError(f"FSRACE_ACCEL={force}: must be kvm or tcg (or unset: fsrace tries KVM and falls back to TCG)")
    if force == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        raise VmError("FSRACE_ACCEL=kvm but /dev/kvm is " + ("missing" if not os.path.exists("/dev/kvm") else
                      "not readable and writable") + ": unset FSRACE_ACCEL to run under TCG, or enable KVM")
    if force in ("tcg", "kvm"):
        return force, f"forced by FSRACE_ACCEL={force}"
    if not os.path.exists("/dev/kvm"):
        return "tcg", "no /dev/kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm is not accessible"
    qemu = qemu_binary()
    key = f"{_boot_id()}:{os.stat(qemu).st_mtime_ns}"
    cache = os.path.join(cache_dir, "accel.json")
    try:
        with open(cache) as f:
            c = json.load(f)
        if c.get("key") == key:
            return c["accel"], c["why"] + " (cached for this host boot)"
    except (OSError, ValueError, KeyError):
        pass
    accel, why = _probe_kvm(kernel, initrd)
    os.makedirs(cache_dir, exist_ok=True)
    with open(cache + ".tmp", "w") as f:
        json.dump({"key": key, "accel": accel, "why": why}, f)
    os.replace(cache + ".tmp", cache)
    return accel, why


def _probe_kvm(kernel: str, initrd: str) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="fsrace-kvm-probe.") as tmp:
        b = QemuBackend("kvm", 1, 256)
        inst = b.create(InstanceSpec(kernel, initrd, "fsrace.probe=1", "", [], os.path.join(tmp, "console.log"),
                                     tmp, root_share=False))
        inst.start()
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < PROBE_TIMEOUT_S:
                if b"fsrace-init: probe ok" in inst.read_console(0):
                    return "kvm", f"KVM probe boot reached init in {time.monotonic() - t0:.1f} s"
                if inst.poll() is not None:
                    err = inst.stderr_text().strip().splitlines()
                    return "tcg", f"KVM probe: QEMU exited ({err[0] if err else 'no message'})"
                time.sleep(0.05)
            return "tcg", f"KVM probe boot did not reach init within {PROBE_TIMEOUT_S:.0f} s (/dev/kvm present but unusable)"
        finally:
            inst.cleanup()
