#!/usr/bin/env python3
"""Build guest kernels for fsrace from Debian's linux-source-6.1.

Standalone, standard library only. Usage (from the repo root):

    python3 kernels/kbuild.py build stock
    python3 kernels/kbuild.py build no-invalidate-lock      # patch from KNOWN_VARIANTS
    python3 kernels/kbuild.py build my-exp --patch kernels/patches/x.patch
    python3 kernels/kbuild.py list
    python3 kernels/kbuild.py path stock [--file vmlinux]
    python3 kernels/kbuild.py check-patches
    python3 kernels/kbuild.py boot-check stock [--image vmlinux]

Layout under the cache dir (default <repo>/.cache/kernels, env FSRACE_KERNEL_CACHE):

    src/<tarball top dir>/    pristine unpacked source (never built in)
    work/<variant>/           in-tree build: a copy of the source (+ patch) and its objects
    <variant>/                results: bzImage, vmlinux, System.map, config, build.log, kbuild.json

A patched variant starts as a `cp -a` of the built `stock` work tree (mtimes
preserved), so applying the patch leaves only the patched files newer than
their objects and `make` recompiles just those and relinks. Variants never
share a tree, so they cannot overwrite each other.

Errors are one line on stderr, exit status 2.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "linux-source-6.1"
TARBALL_GLOB = "linux-source-6.1.tar.*"
USR_SRC = Path("/usr/src")
GUEST_FRAGMENT = REPO / "kernels" / "guest.config"
PATCH_DIR = REPO / "kernels" / "patches"
DEFCONFIG = "defconfig"          # x86_64 defconfig (arch/x86/configs/x86_64_defconfig)
MAKE_TARGET = "bzImage"          # vmlinux is a prerequisite and is kept too
RESERVED_NAMES = {"src", "work"}
STAMP = ".fsrace-kbuild-stamp.json"
UNPACKED_MARK = ".fsrace-unpacked.json"

# Variant name -> patch name in kernels/patches (None: stock source).
KNOWN_VARIANTS = {
    "stock": None,
    "no-invalidate-lock": "no-invalidate-lock-in-fault",
    "ext4-da-no-recheck": "revert-ext4-da-recheck",
    "ext4-punch-no-datasync": "ext4-punch-no-datasync",
}

# Host tools the build needs: executable -> Debian package.
BUILD_TOOLS = {
    "make": "make", "gcc": "gcc", "ld": "binutils", "flex": "flex", "bison": "bison",
    "bc": "bc", "pahole": "dwarves", "perl": "perl", "patch": "patch", "xz": "xz-utils",
    "cpio": "cpio", "rsync": "rsync",
}
BUILD_HEADERS = {
    "/usr/include/openssl/ssl.h": "libssl-dev",
    "/usr/include/libelf.h": "libelf-dev",
}

VARIANT_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")


class KbuildError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


# ---------------------------------------------------------------- pure logic

def validate_variant(name):
    if not VARIANT_RE.match(name or ""):
        raise KbuildError(
            f"bad variant name {name!r}: use 1-40 chars of [a-z0-9._-], starting with a letter or digit")
    if name in RESERVED_NAMES:
        raise KbuildError(f"bad variant name {name!r}: reserved for the cache layout")
    return name


def cache_root(explicit=None):
    if explicit:
        return Path(explicit).resolve()
    env = os.environ.get("FSRACE_KERNEL_CACHE")
    return Path(env).resolve() if env else REPO / ".cache" / "kernels"


class Layout:
    """Where everything for one variant lives."""

    def __init__(self, cache, variant):
        self.cache = Path(cache)
        self.variant = validate_variant(variant)
        self.src_parent = self.cache / "src"
        self.work = self.cache / "work" / variant
        self.out = self.cache / variant
        self.lock = self.cache / "work" / f"{variant}.lock"
        self.log = self.out / "build.log"
        self.meta = self.out / "kbuild.json"
        self.bzimage = self.out / "bzImage"
        self.vmlinux = self.out / "vmlinux"


def available_patches(patch_dir=PATCH_DIR):
    return sorted(p.stem for p in Path(patch_dir).glob("*.patch"))


def resolve_patch(variant, patch_arg=None, patch_dir=PATCH_DIR):
    """Return the patch Path for a variant, or None for an unpatched build.

    patch_arg: None (use KNOWN_VARIANTS), "none", a name in kernels/patches
    (with or without .patch), or a path to a file.
    """
    if patch_arg is None:
        name = KNOWN_VARIANTS.get(variant)
        if name is None:
            return None
    elif patch_arg == "none":
        return None
    else:
        name = patch_arg
    cand = Path(name)
    if cand.suffix == ".patch" and (cand.is_file() or os.sep in name):
        if not cand.is_file():
            raise KbuildError(f"patch file {name} does not exist")
        return cand.resolve()
    stem = name[:-len(".patch")] if name.endswith(".patch") else name
    path = Path(patch_dir) / f"{stem}.patch"
    if not path.is_file():
        have = ", ".join(available_patches(patch_dir)) or "none"
        raise KbuildError(f"patch {stem!r} for variant {variant!r} not found as {path} (available: {have})")
    return path


_FRAG_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_FRAG_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text, origin="<config>", strict=True):
    """Parse a Kconfig fragment or .config into {symbol: value or None (not set)}.

    Strict mode (fragments) rejects lines that are neither settings, comments nor
    blank, and "=n" (kconfig writes that as "is not set"; merge_config would warn).
    """
    out = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = _FRAG_SET.match(line)
        if m:
            sym, val = m.group(1), m.group(2)
            if strict and val == "n":
                raise KbuildError(f"{origin}:{lineno}: write '# {sym} is not set' instead of {sym}=n")
            out[sym] = None if val == "n" else val
            continue
        m = _FRAG_UNSET.match(line)
        if m:
            out[m.group(1)] = None
            continue
        if strict and line and not line.startswith("#"):
            raise KbuildError(f"{origin}:{lineno}: not a Kconfig line: {line!r}")
    return out


def config_mismatches(requested, final):
    """Symbols whose requested value did not survive olddefconfig.

    A symbol requested as not set is satisfied when it is absent (its menu is
    not even visible)."""
    bad = []
    for sym, want in requested.items():
        got = final.get(sym)
        if want != got:
            bad.append(f"{sym}={want if want is not None else 'n'} (got {got if got is not None else 'n'})")
    return bad


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_inputs_id(fragments):
    """Identity of the configuration inputs: defconfig target + fragment contents."""
    h = hashlib.sha256(DEFCONFIG.encode())
    for frag in fragments:
        h.update(b"\0" + Path(frag).read_bytes())
    return h.hexdigest()


def summarize_patch_failure(patch_name, output):
    """One line naming the patch and the file(s) that did not apply, from patch(1) output."""
    current = None
    failed = []
    for line in output.splitlines():
        m = re.match(r"^(?:checking|patching) file (.+)$", line)
        if m:
            current = m.group(1).strip().strip("'")
            continue
        m = re.match(r"^can't find file to patch", line)
        if m:
            failed.append("a file that does not exist (wrong -p level or tree?)")
            continue
        m = re.match(r"^(\d+) out of (\d+) hunks? FAILED", line)
        if m and current:
            failed.append(f"{current} ({m.group(1)} of {m.group(2)} hunks failed)")
            continue
        if "Reversed (or previously applied) patch detected" in line and current:
            failed.append(f"{current} (already applied or reversed)")
    if not failed:
        tail = output.strip().splitlines()[-1:] or ["no output"]
        failed.append(tail[0])
    return f"patch {patch_name} does not apply to {PACKAGE}: " + "; ".join(dict.fromkeys(failed))


def first_build_error(log_text):
    """The most telling line of the last `make -j` run in a build log, or None."""
    start = log_text.rfind("\n$ make -j")
    lines = log_text[start + 1 if start >= 0 else 0:].splitlines()[1:]
    for pattern in (r"\berror:|undefined reference|Error: ", r"Error \d+|\*\*\*|FAILED"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()[:200]
    return None


def read_stamp(work):
    try:
        return json.loads((Path(work) / STAMP).read_text())
    except (OSError, ValueError):
        return None


def write_json(path, data):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- side effects

def log(msg):
    print(f"kbuild: {msg}", flush=True)


def run(cmd, cwd=None, logfile=None, check=True, quiet=False):
    if logfile is not None:
        with open(logfile, "a") as f:
            f.write(f"\n$ {' '.join(map(str, cmd))}\n")
            f.flush()
            r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    else:
        r = subprocess.run(cmd, cwd=cwd, capture_output=quiet, text=True)
    if check and r.returncode != 0:
        where = f"; log: {logfile}" if logfile else ""
        raise KbuildError(f"command failed (exit {r.returncode}): {' '.join(map(str, cmd))}{where}")
    return r


def find_tarball():
    found = sorted(USR_SRC.glob(TARBALL_GLOB))
    return found[-1] if found else None


def package_version():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGE], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_source_package(allow_apt=True):
    tarball = find_tarball()
    if tarball:
        return tarball
    if not allow_apt:
        raise KbuildError(f"{PACKAGE} is not installed (no {USR_SRC}/{TARBALL_GLOB}) and --no-apt was given")
    if os.geteuid() != 0:
        raise KbuildError(f"{PACKAGE} is not installed and apt-get needs root: "
                          f"run 'sudo apt-get install -y {PACKAGE}' or sudo tools/install-kbuild-deps.sh")
    pol = subprocess.run(["apt-cache", "policy", PACKAGE], capture_output=True, text=True)
    if "Candidate:" not in pol.stdout or "Candidate: (none)" in pol.stdout:
        raise KbuildError(f"package {PACKAGE} is not available from the configured apt sources "
                          f"(try 'apt-get update'; Debian 12 bookworm main carries it)")
    log(f"installing {PACKAGE} with apt-get")
    r = subprocess.run(["apt-get", "install", "-y", "-q", PACKAGE],
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise KbuildError(f"apt-get install {PACKAGE} failed (exit {r.returncode}): {last}")
    tarball = find_tarball()
    if not tarball:
        raise KbuildError(f"apt-get installed {PACKAGE} but no {USR_SRC}/{TARBALL_GLOB} appeared")
    return tarball


def check_build_tools():
    missing = sorted({pkg for exe, pkg in BUILD_TOOLS.items() if shutil.which(exe) is None}
                     | {pkg for hdr, pkg in BUILD_HEADERS.items() if not Path(hdr).exists()})
    if missing:
        raise KbuildError(f"missing build dependencies: {' '.join(missing)} "
                          f"(run sudo tools/install-kbuild-deps.sh)")


def source_id(tarball):
    st = tarball.stat()
    return {"tarball": str(tarball), "size": st.st_size, "mtime": int(st.st_mtime),
            "package_version": package_version()}


def ensure_unpacked(cache, tarball):
    """Unpack the tarball once into cache/src/; return the tree path."""
    src_parent = Path(cache) / "src"
    src_parent.mkdir(parents=True, exist_ok=True)
    top = tarball.name.split(".tar")[0]
    tree = src_parent / top
    sid = source_id(tarball)
    mark = tree / UNPACKED_MARK
    if tree.is_dir():
        try:
            if json.loads(mark.read_text()) == sid:
                return tree, sid
        except (OSError, ValueError):
            pass
        if mark.exists() or not (tree / "Makefile").exists():
            log(f"source at {tree} is stale or incomplete; unpacking again")
            shutil.rmtree(tree)
    if not tree.is_dir():
        tmp = src_parent / f".unpack-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        log(f"unpacking {tarball} into {src_parent}")
        run(["tar", "-xf", str(tarball), "-C", str(tmp)])
        os.replace(tmp / top, tree)
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(mark, sid)
    return tree, sid


def relocate_tree(tree, old, new):
    """Rewrite the absolute path `old` to `new` in a copied build tree's text files.

    In-tree kernel objects record relative paths, but the tools built with an
    absolute O= (tools/objtool, tools/bpf/resolve_btfids) record the tree's
    absolute path in their .cmd/.d files. Left alone, the changed command lines
    rebuild objtool, and since every object depends on tools/objtool/objtool a
    copied tree would rebuild from scratch. mtimes are preserved so make sees the
    same order as in the original tree. Returns the number of files rewritten.
    """
    old_b, new_b = os.fsencode(str(old)), os.fsencode(str(new))
    changed = 0
    for dirpath, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
                if not os.path.isfile(path) or os.path.islink(path) or st.st_size > (64 << 20):
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if old_b not in data or b"\0" in data:
                continue
            with open(path, "wb") as f:
                f.write(data.replace(old_b, new_b))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
            changed += 1
    return changed


@contextlib.contextmanager
def locked(path, what):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another kbuild holding {what} ({path})")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def apply_patch(tree, patch):
    dry = subprocess.run(["patch", "-p1", "-f", "--dry-run", "-i", str(patch)],
                         cwd=tree, capture_output=True, text=True)
    if dry.returncode != 0:
        raise KbuildError(summarize_patch_failure(patch.name, dry.stdout + dry.stderr))
    run(["patch", "-p1", "-f", "-s", "--no-backup-if-mismatch", "-i", str(patch)], cwd=tree, quiet=True)


def prepare_work_tree(lay, pristine, sid, patch, base):
    """Make lay.work a tree of pristine source + patch, reusing it or a built base tree."""
    want = {"source": sid, "patch": str(patch) if patch else None,
            "patch_sha256": sha256_file(patch) if patch else None}
    stamp = read_stamp(lay.work)
    if stamp and all(stamp.get(k) == v for k, v in want.items()):
        return stamp
    if lay.work.exists():
        log(f"work tree {lay.work} does not match (source or patch changed); recreating")
        shutil.rmtree(lay.work)
    lay.work.parent.mkdir(parents=True, exist_ok=True)
    tmp = lay.work.with_name(lay.work.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    seed, seed_desc, config_inputs = pristine, "pristine source", None
    base_lock = (locked(Layout(lay.cache, base).lock, f"variant {base}")
                 if base and base != lay.variant else contextlib.nullcontext())
    with base_lock:     # never copy a base tree while it is being built
        if base and base != lay.variant:
            bwork = Layout(lay.cache, base).work
            bstamp = read_stamp(bwork)
            if (bstamp and bstamp.get("source") == sid and bstamp.get("patch") is None
                    and bstamp.get("built")):
                seed, seed_desc = bwork, f"built tree of {base} (incremental)"
                config_inputs = bstamp.get("config_inputs")
            else:
                log(f"base {base} has no built unpatched tree; starting from pristine source (full build)")
        log(f"copying {seed_desc} to {lay.work}")
        run(["cp", "-a", str(seed), str(tmp)])
    if seed != pristine:
        # The copy will be built at lay.work, not at tmp: record that path.
        n = relocate_tree(tmp, Path(seed).resolve(), lay.work.resolve())
        log(f"rewrote the base tree's absolute path in {n} build-metadata files")
    (tmp / STAMP).unlink(missing_ok=True)
    (tmp / UNPACKED_MARK).unlink(missing_ok=True)
    if patch:
        log(f"applying {patch.name}")
        try:
            apply_patch(tmp, patch)
        except KbuildError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    os.replace(tmp, lay.work)
    # Seeded from a configured base: same .config, so configure() need not touch it
    # (rewriting .config would make kconfig re-evaluate and dirty more objects).
    stamp = dict(want, seed=seed_desc, config_inputs=config_inputs, built=False)
    write_json(lay.work / STAMP, stamp)
    return stamp


def configure(lay, stamp, fragments):
    cid = config_inputs_id(fragments)
    if stamp.get("config_inputs") == cid and (lay.work / ".config").exists():
        return cid
    log(f"configuring: make {DEFCONFIG} + {', '.join(str(f) for f in fragments)}")
    run(["make", DEFCONFIG], cwd=lay.work, logfile=lay.log)
    run(["bash", "scripts/kconfig/merge_config.sh", "-m", ".config", *map(str, fragments)],
        cwd=lay.work, logfile=lay.log)
    run(["make", "olddefconfig"], cwd=lay.work, logfile=lay.log)
    requested = {}
    for frag in fragments:
        requested.update(parse_config(Path(frag).read_text(), origin=str(frag)))
    final = parse_config((lay.work / ".config").read_text(), strict=False)
    bad = config_mismatches(requested, final)
    if bad:
        raise KbuildError(f"config values requested but not in the final .config (typo or unmet "
                          f"dependency): {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}")
    stamp.update(config_inputs=cid, built=False)
    write_json(lay.work / STAMP, stamp)
    return cid


def build(args):
    cache = cache_root(args.cache)
    lay = Layout(cache, args.variant)
    patch = resolve_patch(args.variant, args.patch)
    fragments = [GUEST_FRAGMENT] + [Path(f).resolve() for f in (args.fragment or [])]
    for frag in fragments:
        if not frag.is_file():
            raise KbuildError(f"config fragment {frag} does not exist")
        parse_config(frag.read_text(), origin=str(frag))    # fail early on a bad fragment
    check_build_tools()
    tarball = ensure_source_package(allow_apt=not args.no_apt)
    pristine, sid = ensure_unpacked(cache, tarball)
    base = args.base if args.base is not None else ("stock" if args.variant != "stock" else None)
    lay.out.mkdir(parents=True, exist_ok=True)
    with locked(lay.lock, f"variant {lay.variant}"):
        stamp = prepare_work_tree(lay, pristine, sid, patch, base)
        if lay.log.exists():
            lay.log.rename(lay.log.with_suffix(".log.old"))
        cid = configure(lay, stamp, fragments)
        jobs = str(args.jobs)
        cmd = ["make", f"-j{jobs}", f"LOCALVERSION=-{lay.variant}", MAKE_TARGET]
        log(f"building {lay.variant} ({' '.join(cmd)}); log: {lay.log}")
        t0 = time.monotonic()
        r = run(cmd, cwd=lay.work, logfile=lay.log, check=False)
        secs = round(time.monotonic() - t0, 1)
        if r.returncode != 0:
            err = first_build_error(lay.log.read_text(errors="replace")) or "see log"
            raise KbuildError(f"build of {lay.variant} failed (exit {r.returncode}) after {secs}s: "
                              f"{err}; log: {lay.log}")
        release = (lay.work / "include/config/kernel.release").read_text().strip()
        for name, rel in (("bzImage", "arch/x86/boot/bzImage"), ("vmlinux", "vmlinux"),
                          ("System.map", "System.map"), ("config", ".config")):
            tmp = lay.out / f".{name}.tmp"
            shutil.copy2(lay.work / rel, tmp)
            os.replace(tmp, lay.out / name)
        stamp.update(built=True)
        write_json(lay.work / STAMP, stamp)
        meta = {
            "variant": lay.variant,
            "release": release,
            "patch": ({"name": patch.stem, "path": str(patch), "sha256": stamp["patch_sha256"]}
                      if patch else None),
            "package": PACKAGE,
            "package_version": sid.get("package_version"),
            "config_sha256": sha256_file(lay.out / "config"),
            "config_inputs_sha256": cid,
            "fragments": [str(f) for f in fragments],
            "build_seconds": secs,
            "jobs": args.jobs,
            "seed": stamp.get("seed"),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "bzImage": str(lay.bzimage),
            "vmlinux": str(lay.vmlinux),
            "work_tree": str(lay.work),
            "log": str(lay.log),
        }
        write_json(lay.meta, meta)
    log(f"{lay.variant}: {release} in {secs}s -> {lay.bzimage}")
    return 0


def cmd_list(args):
    cache = cache_root(args.cache)
    rows = []
    names = set(KNOWN_VARIANTS)
    if cache.is_dir():
        names |= {p.parent.name for p in cache.glob("*/kbuild.json")}
    for name in sorted(names):
        meta_path = cache / name / "kbuild.json"
        if meta_path.exists():
            m = json.loads(meta_path.read_text())
            patch = (m.get("patch") or {}).get("name", "-")
            rows.append(f"{name:22} {m['release']:32} patch={patch} build={m['build_seconds']}s")
        else:
            rows.append(f"{name:22} {'(not built)':32} patch={KNOWN_VARIANTS.get(name) or '-'}")
    print("\n".join(rows))
    return 0


def cmd_path(args):
    lay = Layout(cache_root(args.cache), args.variant)
    p = lay.out / args.file
    if not lay.meta.exists() or not p.exists():
        raise KbuildError(f"variant {args.variant} is not built (run: python3 kernels/kbuild.py build {args.variant})")
    print(p)
    return 0


BOOT_OK = "VFS: Unable to mount root fs"


def qemu_boot_cmd(image, memory="1G"):
    """Smoke-boot command: TCG only (KVM guests hang on this machine), no disk, no initramfs."""
    return ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", "max", "-m", memory,
            "-nographic", "-no-reboot", "-kernel", str(image),
            "-append", "console=ttyS0 panic=-1"]


def judge_boot(console, release):
    """(ok, reason) for a smoke boot: the right kernel ran all the way to mounting root."""
    if f"Linux version {release} " not in console:
        return False, f"console never showed 'Linux version {release}'"
    if BOOT_OK in console:
        return True, f"reached '{BOOT_OK}' (expected without a root disk)"
    for bad in ("Kernel panic", "BUG:", "Oops", "WARNING:"):
        if bad in console:
            line = next(l for l in console.splitlines() if bad in l)
            return False, f"console shows {line.strip()[:160]!r} before the root mount"
    return False, "timed out before the root mount"


def cmd_boot_check(args):
    lay = Layout(cache_root(args.cache), args.variant)
    image = lay.out / args.image
    if not lay.meta.exists() or not image.exists():
        raise KbuildError(f"variant {args.variant} is not built (run: python3 kernels/kbuild.py build {args.variant})")
    if shutil.which("qemu-system-x86_64") is None:
        raise KbuildError("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    release = json.loads(lay.meta.read_text())["release"]
    console_log = lay.out / f"boot-{args.image}.log"
    cmd = qemu_boot_cmd(image)
    log(f"booting {image} under TCG (timeout {args.timeout}s); console: {console_log}")
    t0 = time.monotonic()
    with open(console_log, "wb") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:      # only the qemu we started, by its pid
                proc.kill()
                proc.wait()
    secs = round(time.monotonic() - t0, 1)
    ok, why = judge_boot(console_log.read_text(errors="replace"), release)
    if not ok:
        raise KbuildError(f"boot check of {args.variant} ({args.image}) failed after {secs}s: {why}; "
                          f"console: {console_log}")
    log(f"{args.variant} ({args.image}): boots, {release}, {why}, {secs}s")
    return 0


def cmd_check_patches(args):
    cache = cache_root(args.cache)
    tarball = ensure_source_package(allow_apt=not args.no_apt)
    pristine, _ = ensure_unpacked(cache, tarball)
    for stem in available_patches():
        patch = PATCH_DIR / f"{stem}.patch"
        r = subprocess.run(["patch", "-p1", "-f", "--dry-run", "-i", str(patch)],
                           cwd=pristine, capture_output=True, text=True)
        if r.returncode != 0:
            raise KbuildError(summarize_patch_failure(patch.name, r.stdout + r.stderr))
        log(f"{patch.name}: applies cleanly")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="kernels/kbuild.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="cache dir (default <repo>/.cache/kernels or $FSRACE_KERNEL_CACHE)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build (or incrementally rebuild) one variant")
    b.add_argument("variant", help="e.g. " + ", ".join(KNOWN_VARIANTS))
    b.add_argument("--patch", help="patch name in kernels/patches, a .patch path, or 'none' "
                   "(default: the known variant's patch)")
    b.add_argument("--base", help="built unpatched variant to copy for an incremental build "
                   "(default: stock for patched variants; '' for none)")
    b.add_argument("--fragment", action="append", help="extra config fragment (repeatable), "
                   "e.g. kernels/debug.config")
    b.add_argument("-j", "--jobs", type=int, default=2)
    b.add_argument("--no-apt", action="store_true", help="never run apt-get")
    b.set_defaults(func=build)
    l = sub.add_parser("list", help="variants and their build status")
    l.set_defaults(func=cmd_list)
    p = sub.add_parser("path", help="print the path of a built artifact")
    p.add_argument("variant")
    p.add_argument("--file", default="bzImage", choices=["bzImage", "vmlinux", "System.map", "config", "kbuild.json"])
    p.set_defaults(func=cmd_path)
    bc = sub.add_parser("boot-check", help="smoke-boot a built variant in QEMU/TCG without a root disk")
    bc.add_argument("variant")
    bc.add_argument("--image", default="bzImage", choices=["bzImage", "vmlinux"],
                    help="vmlinux exercises the PVH direct-boot entry")
    bc.add_argument("--timeout", type=int, default=300)
    bc.set_defaults(func=cmd_boot_check)
    c = sub.add_parser("check-patches", help="dry-run every kernels/patches/*.patch on the pristine source")
    c.add_argument("--no-apt", action="store_true")
    c.set_defaults(func=cmd_check_patches)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except KbuildError as e:
        print(f"kbuild: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kbuild: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
