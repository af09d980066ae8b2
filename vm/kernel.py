"""Kernel images: identify (release, arch, format), extract the PVH-bootable vmlinux from a bzImage,
find the modules and config that belong to it, check that it can run an fsrace guest, and fetch
Debian's packaged kernel into the project cache (never onto the host's /boot).

Everything here raises VmError (one line: the thing and the fix; exit code 2) for bad inputs.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile

from .errors import VmError

# What the guest needs from the kernel, as (name used in messages, module name, CONFIG_ symbol).
ROOT_FEATURES = [
    ("virtio PCI transport", "virtio_pci", "CONFIG_VIRTIO_PCI"),
    ("virtio block devices", "virtio_blk", "CONFIG_VIRTIO_BLK"),
    ("9p network protocol", "9pnet", "CONFIG_NET_9P"),
    ("9p over virtio", "9pnet_virtio", "CONFIG_NET_9P_VIRTIO"),
    ("9p filesystem", "9p", "CONFIG_9P_FS"),
]
# Persistent memory for the DAX rows (QEMU NVDIMM -> ACPI NFIT -> libnvdimm region -> fsdax namespace
# -> /dev/pmemN). A module name of "" is a feature with no module of its own (checked in the config).
PMEM_FEATURES = [
    ("ACPI NFIT (QEMU's NVDIMM)", "nfit", "CONFIG_ACPI_NFIT"),
    ("persistent memory block devices", "nd_pmem", "CONFIG_BLK_DEV_PMEM"),
    ("fsdax namespaces (pfn devices)", "", "CONFIG_ND_PFN"),
    ("DAX for filesystems", "", "CONFIG_FS_DAX"),
]
# Filesystem (campaign name) -> what the guest kernel needs for it.
FS_FEATURES = {
    "ext4": [("ext4 filesystem", "ext4", "CONFIG_EXT4_FS")],
    "xfs": [("XFS filesystem", "xfs", "CONFIG_XFS_FS")],
    "ext4-dax": [("ext4 filesystem", "ext4", "CONFIG_EXT4_FS")] + PMEM_FEATURES,
    "xfs-dax": [("XFS filesystem", "xfs", "CONFIG_XFS_FS")] + PMEM_FEATURES,
    "ceph": [("ceph kernel client", "ceph", "CONFIG_CEPH_FS")],
}
# Filesystems on persistent memory: the VM gets an NVDIMM for each instead of a virtio disk.
PMEM_FILESYSTEMS = {"ext4-dax", "xfs-dax"}
# Filesystems on a cluster the guest starts itself (no scratch disk; more guest memory).
CLUSTER_FS = {"ceph"}
# Guest memory a campaign with ceph needs at least: measured daemons' RSS under TCG (mon ~40 MiB,
# mgr ~300 MiB, OSD on memstore ~40 MiB + the data it holds, MDS ~25 MiB) plus the guest's own.
CEPH_MIN_MEMORY_MIB = 2048


def fs_features(fs_types: list[str]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for t in fs_types:
        for f in FS_FEATURES.get(t, []):
            if f not in out:
                out.append(f)
    return out


def fs_modules(fs_types: list[str]) -> list[str]:
    return [m for _, m, _ in fs_features(fs_types) if m]

EM_X86_64 = 62
ELF_MACHINES = {3: "i386", 8: "mips", 20: "powerpc", 21: "powerpc64", 22: "s390", 40: "arm", 43: "sparc64",
                62: "x86_64", 183: "arm64", 243: "riscv", 258: "loongarch"}
XEN_ELFNOTE_PHYS32_ENTRY = 18


@dataclasses.dataclass
class KernelImage:
    path: str            # what the user named (bzImage / vmlinuz / vmlinux)
    fmt: str             # "bzimage" | "elf"
    release: str         # "6.1.0-56-amd64"
    version_line: str = ""  # the full version string
    compression: str = ""  # bzImage payload: xz, gzip, zstd, ...
    pvh: bool = False    # ELF with a PVH entry note (QEMU boots it directly)


@dataclasses.dataclass
class Kernel:
    image: KernelImage
    boot_path: str               # what QEMU gets with -kernel (vmlinux with PVH note when possible)
    boot_kind: str               # "pvh-vmlinux" | "bzimage"
    modules_dir: str | None      # /lib/modules/<release>-like tree (with modules.dep), None: built-in
    config: dict | None          # CONFIG_* -> value, when a config was found
    config_source: str = ""
    features: dict = dataclasses.field(default_factory=dict)  # module name -> builtin|module|missing|unknown


def _u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def _u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def _release_from_version(s: str) -> str:
    m = re.match(r"\s*(?:Linux version )?(\S+)", s)
    return m.group(1) if m else ""


def _find_version_string(data: bytes) -> str:
    i = data.find(b"Linux version ")
    while i >= 0:
        end = data.find(b"\0", i, i + 400)
        if end > 0:
            s = data[i:end].decode("ascii", "replace")
            if re.match(r"Linux version \d+\.\d+", s):  # the banner, not a format string with %s
                return s.strip()
        i = data.find(b"Linux version ", i + 1)
    return ""


def identify(path: str) -> KernelImage:
    """Reads the image header; raises VmError for a missing file, a non-kernel or another arch."""
    if not os.path.exists(path):
        raise VmError(f"kernel image {path} does not exist: pass a bzImage/vmlinuz/vmlinux, a build id or name from "
                      f"'fsrace kernel list', or --kernel debian")
    if os.path.isdir(path):
        raise VmError(f"kernel image {path} is a directory: pass the bzImage/vmlinuz/vmlinux file inside it")
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as e:
        raise VmError(f"cannot read kernel image {path}: {e.strerror}") from None
    if len(head) >= 0x250 and head[0x202:0x206] == b"HdrS":
        proto = _u16(head, 0x206)
        if proto < 0x20c:
            raise VmError(f"{path}: x86 boot protocol {proto >> 8}.{proto & 0xff} is too old (need 2.12+, Linux 3.8+)")
        xload = _u16(head, 0x236)
        if not xload & 1:
            raise VmError(f"{path} is a 32-bit x86 kernel: fsrace boots x86_64 guests; build with CONFIG_64BIT=y")
        ptr = _u16(head, 0x20e)
        ver = ""
        if ptr:
            raw = head[ptr + 0x200: ptr + 0x200 + 256].split(b"\0")[0]
            ver = raw.decode("ascii", "replace").strip()
        setup = (head[0x1f1] or 4) + 1
        need = setup * 512 + _u32(head, 0x1f4) * 16  # setup sectors + syssize (16-byte units)
        have = os.path.getsize(path)
        if have < need:
            raise VmError(f"{path} is truncated: its boot header says {need} bytes, the file has {have}: "
                          f"copy or build the image again")
        with open(path, "rb") as f:
            f.seek(setup * 512 + _u32(head, 0x248))
            magic = f.read(6)
        comp = {b"\xfd7zXZ": "xz", b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
                b"\x5d\x00\x00": "lzma", b"\x02\x21\x4c\x18": "lz4", b"\x89LZO": "lzo"}
        c = next((v for k, v in comp.items() if magic.startswith(k)), "unknown")
        return KernelImage(path, "bzimage", _release_from_version(ver), ver, compression=c)
    if head[:4] == b"\x7fELF" and len(head) < 64:
        raise VmError(f"{path} is truncated: an ELF file of {len(head)} bytes is no kernel; pass a bzImage/vmlinuz/vmlinux")
    if head[:4] == b"\x7fELF":
        if head[4] != 2 or head[5] != 1:
            raise VmError(f"{path} is a 32-bit or big-endian ELF: fsrace boots x86_64 kernels")
        machine = _u16(head, 18)
        if machine != EM_X86_64:
            arch = ELF_MACHINES.get(machine, f"machine {machine}")
            raise VmError(f"{path} is a kernel for {arch}, not x86_64: pass an x86_64 kernel with --kernel")
        with open(path, "rb") as f:
            data = f.read()
        ver = _find_version_string(data)
        if not ver:
            raise VmError(f"{path} is an x86_64 ELF file but not a Linux kernel (no 'Linux version' banner): pass a vmlinux or bzImage")
        return KernelImage(path, "elf", _release_from_version(ver), ver, pvh=elf_has_pvh_note(data))
    if len(head) >= 0x40 and head[0x38:0x3c] == b"ARM\x64":
        raise VmError(f"{path} is an arm64 kernel Image, not x86_64: pass an x86_64 kernel with --kernel")
    if head[:2] == b"MZ" and head[4:8] == b"zimg":
        raise VmError(f"{path} is an EFI zboot kernel for another architecture, not an x86_64 bzImage")
    raise VmError(f"{path} is not a Linux kernel image (no bzImage header, no ELF): pass a bzImage/vmlinuz/vmlinux with --kernel")


def elf_has_pvh_note(data: bytes) -> bool:
    """True when a 64-bit little-endian ELF has a Xen PHYS32_ENTRY note (PVH entry point)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        o = phoff + i * phentsize
        if o + 56 > len(data):
            break
        p_type = _u32(data, o)
        if p_type != 4:  # PT_NOTE
            continue
        off, _, _, filesz = struct.unpack_from("<QQQQ", data, o + 8)
        pos, end = off, min(off + filesz, len(data))
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            name = data[pos + 12: pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3)
    return False


def decompress_payload(path: str) -> bytes:
    """The ELF vmlinux inside a bzImage (xz, gzip, bzip2 and lzma payloads; stdlib only)."""
    with open(path, "rb") as f:
        data = f.read()
    setup = (data[0x1f1] or 4) + 1
    start = setup * 512 + _u32(data, 0x248)
    payload = data[start: start + _u32(data, 0x24c)]
    if payload.startswith(b"\xfd7zXZ"):
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        return d.decompress(payload)
    if payload.startswith(b"\x1f\x8b"):
        d = __import__("zlib").decompressobj(16 + 15)
        return d.decompress(payload)
    if payload.startswith(b"BZh"):
        return __import__("bz2").BZ2Decompressor().decompress(payload)
    if payload.startswith(b"\x5d\x00\x00"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(payload)
    raise ValueError("unsupported payload compression")


def pvh_vmlinux(img: KernelImage, cache_dir: str) -> str | None:
    """Path of a PVH-bootable vmlinux for `img` (extracted once into cache_dir), or None."""
    if img.fmt == "elf":
        return img.path if img.pvh else None
    if img.compression not in ("xz", "gzip", "bzip2", "lzma"):
        return None  # zstd/lz4/lzo: no stdlib decompressor; boot the bzImage
    st = os.stat(img.path)
    key = hashlib.sha256(f"{os.path.realpath(img.path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    out = os.path.join(cache_dir, f"vmlinux-{img.release}-{key}")
    if os.path.exists(out):
        return out
    if os.path.exists(out + ".nopvh"):
        return None
    try:
        elf = decompress_payload(img.path)
    except (ValueError, lzma.LZMAError, OSError, EOFError):
        return None
    os.makedirs(cache_dir, exist_ok=True)
    if not elf_has_pvh_note(elf):
        open(out + ".nopvh", "w").close()
        return None
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".vmlinux.")
    with os.fdopen(fd, "wb") as f:
        f.write(elf)
    os.replace(tmp, out)
    return out


# ---- config and modules --------------------------------------------------------------------------

def parse_config(text: str) -> dict:
    cfg = {}
    for line in text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            cfg[m.group(1)] = m.group(2)
    return cfg


def embedded_config(elf: bytes) -> str | None:
    """CONFIG_IKCONFIG: the gzip'd .config between IKCFG_ST and IKCFG_ED."""
    i = elf.find(b"IKCFG_ST")
    if i < 0:
        return None
    j = elf.find(b"IKCFG_ED", i)
    if j < 0:
        return None
    try:
        return gzip.decompress(elf[i + 8: j]).decode("utf-8", "replace")
    except (OSError, EOFError):
        return None


def find_config(img: KernelImage, modules_dir: str | None, vmlinux: str | None) -> tuple[dict | None, str]:
    d = os.path.dirname(os.path.abspath(img.path))
    cands = [os.path.join(d, f"config-{img.release}"), os.path.join(d, ".config"),
             os.path.join(d, "..", "..", "..", ".config"),  # arch/x86/boot/bzImage in a build tree
             os.path.join(d, "..", "boot", f"config-{img.release}")]
    if modules_dir:
        cands.append(os.path.join(modules_dir, "build", ".config"))
    cands.append(f"/boot/config-{img.release}")
    for c in cands:
        if os.path.isfile(c):
            with open(c, errors="replace") as f:
                text = f.read()
            if "CONFIG_" in text:
                return parse_config(text), os.path.normpath(c)
    for elf_path in [vmlinux] if vmlinux else []:
        with open(elf_path, "rb") as f:
            text = embedded_config(f.read())
        if text:
            return parse_config(text), f"{elf_path} (CONFIG_IKCONFIG)"
    return None, ""


def default_modules_dirs(img: KernelImage) -> list[str]:
    d = os.path.dirname(os.path.abspath(img.path))
    r = img.release
    return [os.path.join(d, "lib", "modules", r), os.path.join(d, "..", "lib", "modules", r),
            os.path.join(d, "modules", r), f"/lib/modules/{r}"]


def ensure_depmod(modules_dir: str, release: str, writable_copy_dir: str) -> str:
    """Returns a modules tree that has modules.dep: the given one, or (when it lacks modules.dep and is
    not ours to write) a symlinked copy in writable_copy_dir on which depmod ran."""
    if os.path.isfile(os.path.join(modules_dir, "modules.dep")):
        return modules_dir
    depmod = shutil.which("depmod") or ("/usr/sbin/depmod" if os.path.exists("/usr/sbin/depmod") else None)
    if not depmod:
        raise VmError(f"{modules_dir} has no modules.dep and depmod is missing: run 'make deps' (installs kmod)")
    base = os.path.join(writable_copy_dir, "depmod-" + hashlib.sha256(os.path.realpath(modules_dir).encode()).hexdigest()[:12])
    tree = os.path.join(base, "lib", "modules", release)
    if not os.path.isfile(os.path.join(tree, "modules.dep")):
        os.makedirs(os.path.dirname(tree), exist_ok=True)
        if not os.path.exists(tree):
            shutil.copytree(modules_dir, tree, symlinks=True, copy_function=os.symlink)
        r = subprocess.run([depmod, "-b", base, release], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.isfile(os.path.join(tree, "modules.dep")):
            raise VmError(f"depmod failed on {modules_dir}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return tree


class ModuleIndex:
    """modules.dep / modules.builtin / modules.softdep / modules.alias of one tree."""

    def __init__(self, modules_dir: str):
        self.dir = modules_dir
        self.deps: dict[str, list[str]] = {}   # module name -> dependency names
        self.path: dict[str, str] = {}          # module name -> relative .ko path
        self.builtin: set[str] = set()
        self.softdeps: dict[str, list[str]] = {}
        self.aliases: dict[str, list[str]] = {}
        with open(os.path.join(modules_dir, "modules.dep")) as f:
            for line in f:
                if ":" not in line:
                    continue
                mod, rest = line.split(":", 1)
                name = module_name(mod)
                self.path[name] = mod.strip()
                self.deps[name] = [module_name(p) for p in rest.split()]
        b = os.path.join(modules_dir, "modules.builtin")
        if os.path.isfile(b):
            with open(b) as f:
                self.builtin = {module_name(l) for l in f if l.strip()}
        s = os.path.join(modules_dir, "modules.softdep")
        if os.path.isfile(s):
            with open(s) as f:
                for line in f:
                    m = re.match(r"softdep\s+(\S+)\s+pre:\s*(.*)", line)
                    if m:
                        pre = m.group(2).split(" post:")[0].split()
                        self.softdeps.setdefault(m.group(1).replace("-", "_"), []).extend(pre)
        a = os.path.join(modules_dir, "modules.alias")
        if os.path.isfile(a):
            with open(a) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 3 and p[0] == "alias" and not any(ch in p[1] for ch in "*?["):
                        self.aliases.setdefault(p[1], []).append(p[2].replace("-", "_"))

    def state(self, name: str) -> str:
        name = name.replace("-", "_")
        if name in self.builtin:
            return "builtin"
        if name in self.path:
            return "module"
        return "missing"

    def resolve_alias(self, name: str) -> list[str]:
        n = name.replace("-", "_")
        if n in self.path or n in self.builtin:
            return [n]
        return self.aliases.get(name, [])

    def load_order(self, wanted: list[str]) -> tuple[list[str], list[str]]:
        """Modules to insmod for `wanted` (dependencies first, each once) and the optional ones among
        them (soft dependencies, whose load may fail harmlessly)."""
        order: list[str] = []
        optional: set[str] = set()
        seen: set[str] = set()

        def visit(n: str, soft: bool):
            n = n.replace("-", "_")
            if n in seen or n in self.builtin or n not in self.path:
                return
            seen.add(n)
            for s in self.softdeps.get(n, []):
                for t in self.resolve_alias(s):
                    visit(t, True)
            for d in self.deps.get(n, []):
                visit(d, soft)
            if soft:
                optional.add(n)
            order.append(n)

        for w in wanted:
            visit(w, False)
        return order, [o for o in order if o in optional]


def module_name(path: str) -> str:
    base = os.path.basename(path.strip())
    for ext in (".ko.xz", ".ko.gz", ".ko.zst", ".ko"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base.replace("-", "_")


def feature_states(config: dict | None, index: ModuleIndex | None, fs_types: list[str]) -> dict:
    """module name -> builtin | module | missing | unknown, for everything the guest needs."""
    feats = ROOT_FEATURES + fs_features(fs_types)
    out = {}
    for _, mod, sym in feats:
        st = "unknown"
        key = mod or sym
        if not mod:  # no module of its own: the config decides (unknown without one)
            if config is not None:
                v = config.get(sym)
                st = "builtin" if v == "y" else "config-module" if v == "m" else "missing"
            out[key] = st
            continue
        if index is not None:
            st = index.state(mod)
        if config is not None:
            v = config.get(sym)
            cst = "builtin" if v == "y" else "module" if v == "m" else "missing"
            if st == "unknown" or cst == "builtin" or (cst == "missing" and st != "builtin"):
                st = cst
            if cst == "module" and st == "missing" and index is not None:
                st = "module-file-missing"
        out[mod] = st
    return out


def check_features(k: Kernel, fs_types: list[str]) -> None:
    feats = ROOT_FEATURES + fs_features(fs_types)
    src = k.config_source or (k.modules_dir or "")
    for what, mod, sym in feats:
        st = k.features.get(mod or sym)
        if st == "missing":
            raise VmError(f"kernel {k.image.release} ({k.image.path}) lacks {what} ({sym} is not set in {src}): "
                          f"rebuild it with {sym}=y (or =m plus --modules)")
        if st == "module-file-missing":
            raise VmError(f"kernel {k.image.release} builds {what} as a module ({sym}=m) but {mod}.ko is not in "
                          f"{k.modules_dir}: pass the matching modules tree with --modules")
        if st == "module" and not k.modules_dir:
            raise VmError(f"kernel {k.image.release} ({k.image.path}) is modular ({sym}=m) but its modules were not found "
                          f"(looked in {', '.join(default_modules_dirs(k.image))}): pass --modules DIR "
                          f"(the lib/modules/{k.image.release} tree, e.g. from 'make modules_install INSTALL_MOD_PATH=...')")


def kernel_build_image(spec: str) -> str | None:
    """The bzImage of an `fsrace kernel build` by its id, id prefix or name (kernels/kbuild.py's cache:
    $FSRACE_KERNEL_CACHE or /var/cache/fsrace/kernels), or None when spec names no build."""
    if os.path.exists(spec) or "/" in spec or not re.match(r"^[a-z0-9][a-z0-9._-]{0,39}$", spec):
        return None
    builds = os.path.join(os.environ.get("FSRACE_KERNEL_CACHE") or "/var/cache/fsrace/kernels", "builds")
    metas = []
    for d in sorted(os.listdir(builds)) if os.path.isdir(builds) else []:
        try:
            with open(os.path.join(builds, d, "kbuild.json")) as f:
                m = json.load(f)
        except (OSError, ValueError):
            continue  # dot dirs (half-written builds) have none
        if not d.startswith(".") and os.path.isfile(os.path.join(builds, d, "bzImage")):
            metas.append((m.get("built_at", ""), d, m.get("name")))
    hits = [d for _, d, _ in metas if d == spec] or [d for _, d, _ in metas if d.startswith(spec) and len(spec) >= 4]
    if len(hits) > 1:
        raise VmError(f"--kernel {spec} matches several kernel builds ({', '.join(hits)}): give more of the id")
    if not hits:
        hits = [d for _, d, n in sorted(metas, reverse=True) if n == spec][:1]
    return os.path.join(builds, hits[0], "bzImage") if hits else None


def resolve(spec: str, modules: str | None, fs_types: list[str], cache_dir: str, verbose=True) -> Kernel:
    """--kernel PATH|debian and --modules DIR -> a checked Kernel ready to boot."""
    if spec == "debian":
        spec = fetch_debian(os.path.join(cache_dir, "kernels"), verbose)
    else:
        spec = kernel_build_image(spec) or spec  # `fsrace kernel build`'s id or name
    img = identify(spec)
    if not img.release:
        raise VmError(f"{spec}: cannot read the kernel release from the image header: is it a complete kernel build?")
    vml = pvh_vmlinux(img, os.path.join(cache_dir, "vmlinux"))
    mdir = None
    if modules:
        if not os.path.isdir(modules):
            raise VmError(f"--modules {modules} is not a directory: pass the lib/modules/{img.release} tree of this kernel")
        m = modules
        if not os.path.isfile(os.path.join(m, "modules.order")) and os.path.isdir(os.path.join(m, "lib", "modules", img.release)):
            m = os.path.join(m, "lib", "modules", img.release)  # INSTALL_MOD_PATH given
        if not os.path.isdir(os.path.join(m, "kernel")) and not os.path.isfile(os.path.join(m, "modules.dep")):
            raise VmError(f"--modules {modules} holds no modules of {img.release} (no kernel/ or modules.dep): "
                          f"pass the lib/modules/{img.release} tree")
        mdir = m
    else:
        for c in default_modules_dirs(img):
            if os.path.isdir(os.path.join(c, "kernel")):
                mdir = os.path.normpath(c)
                break
    if mdir:
        mdir = ensure_depmod(mdir, img.release, os.path.join(cache_dir, "modules"))
    index = ModuleIndex(mdir) if mdir else None
    config, csrc = find_config(img, mdir, vml)
    k = Kernel(img, vml or img.path, "pvh-vmlinux" if vml else "bzimage", mdir, config, csrc)
    k.features = feature_states(config, index, fs_types)
    check_features(k, fs_types)
    return k


# ---- Debian's kernel -----------------------------------------------------------------------------

def fetch_debian(kernels_dir: str, verbose=True) -> str:
    """apt-get download + dpkg -x of Debian's linux-image-<ver>-amd64 into kernels_dir; returns the
    vmlinuz path. Reuses an earlier unpack of the same package version."""
    os.makedirs(kernels_dir, exist_ok=True)
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        raise VmError("--kernel debian needs apt-get and dpkg (a Debian host): pass --kernel PATH instead")
    pkg = _debian_image_package()
    done = os.path.join(kernels_dir, pkg, ".complete")
    root = os.path.join(kernels_dir, pkg)
    if not os.path.exists(done):
        if verbose:
            print(f"fsrace: fetching {pkg} (apt-get download + dpkg -x into {root}; /boot is not touched)", flush=True)
        with tempfile.TemporaryDirectory(dir=kernels_dir, prefix=".dl.") as tmp:
            os.chmod(tmp, 0o755)
            r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=tmp, capture_output=True, text=True)
            debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
            if r.returncode != 0 or not debs:
                last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no .deb downloaded"]
                raise VmError(f"apt-get download {pkg} failed: {last[0]} (check network / apt sources, or pass --kernel PATH)")
            unpack = os.path.join(tmp, "x")
            r = subprocess.run(["dpkg", "-x", os.path.join(tmp, debs[0]), unpack], capture_output=True, text=True)
            if r.returncode != 0:
                raise VmError(f"dpkg -x {debs[0]} failed: {r.stderr.strip()}")
            rel = pkg[len("linux-image-"):]
            tree = os.path.join(unpack, "lib", "modules", rel)
            depmod = shutil.which("depmod") or "/usr/sbin/depmod"
            if not os.path.exists(depmod):
                raise VmError("depmod is missing (needed to index the Debian kernel's modules): run 'make deps'")
            sm = os.path.join(unpack, "boot", f"System.map-{rel}")
            r = subprocess.run([depmod, "-b", unpack] + (["-F", sm] if os.path.exists(sm) else []) + [rel],
                               capture_output=True, text=True)
            if r.returncode != 0 or not os.path.isfile(os.path.join(tree, "modules.dep")):
                raise VmError(f"depmod on {pkg} failed: {r.stderr.strip()}")
            if os.path.exists(root):
                shutil.rmtree(root)
            os.replace(unpack, root)
        open(done, "w").close()
    boot = os.path.join(root, "boot")
    imgs = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
    if not imgs:
        raise VmError(f"{pkg} unpacked into {root} holds no boot/vmlinuz-*: remove that directory and retry")
    return os.path.join(boot, imgs[0])


def _debian_image_package() -> str:
    """The linux-image-<abi>-amd64 package the linux-image-amd64 metapackage depends on."""
    r = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+-amd64)\s*$", line)
        if m:
            return m.group(1)
    raise VmError("cannot find Debian's kernel package (apt-cache depends linux-image-amd64 found nothing): "
                  "run 'apt-get update' or pass --kernel PATH")
