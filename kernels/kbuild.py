#!/usr/bin/env python3
"""Build guest kernels for fsrace from any kernel source tree (`fsrace kernel build`).

Standalone, standard library only. Usage (from the repo root; `./fsrace kernel ...` runs the same):

    python3 kernels/kbuild.py build --src ~/linux [--rev v6.6] [--patch x.patch ...]
                                    [--fragment extra.config ...] [--debug lockdep,kasan] [NAME]
    python3 kernels/kbuild.py build stock                   # Debian's linux-source-6.1, no patch
    python3 kernels/kbuild.py build no-invalidate-lock      # the same with that variant's patch
    python3 kernels/kbuild.py list
    python3 kernels/kbuild.py path ID-or-NAME [--file vmlinux]
    python3 kernels/kbuild.py check-patches
    python3 kernels/kbuild.py boot-check ID-or-NAME [--image vmlinux]

The last line `build` prints on stdout is the image (bzImage) path.

Layout under the cache dir (default /var/cache/fsrace/kernels, env FSRACE_KERNEL_CACHE; outside the
clone so every clone on the machine shares it; ccache in /var/cache/fsrace/ccache, env
FSRACE_CCACHE_DIR):

    src/linux-source-6.1/   Debian's tarball unpacked once, never built in
    work/<wkey>/obj/        the O= build directory of one (source location, config inputs) pair: every
                            revision and patch set of that tree with that config builds here, so a
                            bisect step recompiles only what changed
    work/<wkey>/src/        the build's own source tree when the user's tree must not be touched: a
                            `git clone --shared` of a git tree checked out at the revision, or an rsync
                            copy of a non-git tree that gets patches
    builds/<id>/            one finished build: bzImage, vmlinux, System.map, .config, build.log,
                            patches/, kbuild.json. Written as builds/.tmp-<id>.<pid>/ and renamed into
                            place, so a failed or interrupted build is never listed.

<id> is a hash of everything that decides the image: the source (git commit, or the tree's
fingerprint), the patches' contents, the config inputs (base, fragments, debug sets), the name
(LOCALVERSION) and the compiler.

Errors are one line on stderr, exit status 2.
"""

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "linux-source-6.1"
TARBALL_GLOB = "linux-source-6.1.tar.*"
USR_SRC = Path("/usr/src")
GUEST_FRAGMENT = REPO / "kernels" / "guest.config"
PATCH_DIR = REPO / "kernels" / "patches"
DEBUG_DIR = REPO / "kernels" / "debug"
# --debug names that live elsewhere (kept where the README and tests/vm/kwiden.sh point).
DEBUG_ALIASES = {"xfs-debug": REPO / "kernels" / "xfs-debug.config"}
DEFAULT_CACHE = Path("/var/cache/fsrace/kernels")
DEFAULT_CCACHE = Path("/var/cache/fsrace/ccache")
BASE_CONFIG = "allnoconfig"      # + kvm_guest.config + kernels/guest.config (+ fragments, debug sets)
GUEST_BASE_FRAGMENT = "kvm_guest.config"
MAKE_TARGET = "bzImage"          # vmlinux is a prerequisite and is kept too
RESERVED_NAMES = {"src", "work", "builds"}
UNPACKED_MARK = ".fsrace-unpacked.json"
WORK_STAMP = "kbuild-work.json"
PROGRESS_EVERY = 30.0            # seconds between progress lines when stdout is not a terminal

# Variant name -> patch name in kernels/patches (None: stock source).
KNOWN_VARIANTS = {
    "stock": None,
    "no-invalidate-lock": "no-invalidate-lock-in-fault",
    "ext4-da-no-recheck": "revert-ext4-da-recheck",
    "ext4-punch-no-datasync": "ext4-punch-no-datasync",
    "no-dio-invalidate": "no-dio-post-write-invalidate",
    "ext4-punch-no-invalidate-lock": "ext4-punch-no-invalidate-lock",
    "xfs-falloc-no-mmaplock": "xfs-falloc-no-mmaplock",
    "dax-no-redirty": "dax-no-redirty",
    "ceph-punch-no-invalidate-lock": "ceph-punch-no-invalidate-lock",
    "ceph-dio-no-invalidate": "ceph-dio-no-invalidate",
    "dax-writeback-fix": "dax-writeback-wait-locked",  # a candidate fix, not a revert (see the patch)
    "bio-release-fix": "bio-release-devmap-wake",      # a candidate fix, not a revert (see the patch)
}

# Host tools the build needs: executable -> Debian package.
BUILD_TOOLS = {
    "make": "make", "gcc": "gcc", "ld": "binutils", "flex": "flex", "bison": "bison",
    "bc": "bc", "pahole": "dwarves", "perl": "perl",
}
BUILD_HEADERS = {
    "/usr/include/openssl/ssl.h": "libssl-dev",
    "/usr/include/libelf.h": "libelf-dev",
}

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
ID_RE = re.compile(r"^[0-9a-f]{12}$")


class KbuildError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


# ---------------------------------------------------------------- pure logic

def validate_variant(name):
    if not NAME_RE.match(name or ""):
        raise KbuildError(
            f"bad build name {name!r}: use 1-40 chars of [a-z0-9._-], starting with a letter or digit")
    if name in RESERVED_NAMES:
        raise KbuildError(f"bad build name {name!r}: reserved for the cache layout")
    return name


def cache_root(explicit=None):
    if explicit:
        return Path(explicit).resolve()
    env = os.environ.get("FSRACE_KERNEL_CACHE")
    return Path(env).resolve() if env else DEFAULT_CACHE


def ccache_dir():
    env = os.environ.get("FSRACE_CCACHE_DIR")
    return Path(env).resolve() if env else DEFAULT_CCACHE


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
    if os.sep in name:
        if not cand.is_file():
            raise KbuildError(f"patch file {name} does not exist")
        return cand.resolve()
    stem = name[:-len(".patch")] if name.endswith(".patch") else name
    path = Path(patch_dir) / f"{stem}.patch"
    if not path.is_file():
        if cand.is_file():
            return cand.resolve()
        have = ", ".join(available_patches(patch_dir)) or "none"
        raise KbuildError(f"patch {stem!r} for variant {variant!r} not found as {path} (available: {have})")
    return path


def resolve_patches(name, patch_args, patch_dir=PATCH_DIR):
    """--patch given zero or more times -> list of Paths (a known variant's own patch when none)."""
    if not patch_args:
        p = resolve_patch(name, None, patch_dir) if name else None
        return [p] if p else []
    out = []
    for a in patch_args:
        p = resolve_patch(name or "-", a, patch_dir)
        if p:
            out.append(p)
    return out


def debug_fragments(spec, debug_dir=DEBUG_DIR, aliases=None):
    """--debug lockdep,kasan,... -> [(name, Path)] in the order given, each once."""
    aliases = DEBUG_ALIASES if aliases is None else aliases
    if not spec:
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    have = sorted({p.stem for p in Path(debug_dir).glob("*.config")} | set(aliases))
    out = []
    for n in dict.fromkeys(names):
        path = aliases.get(n) or Path(debug_dir) / f"{n}.config"
        if not Path(path).is_file():
            raise KbuildError(f"unknown debug set {n!r} (known: {', '.join(have)})")
        out.append((n, Path(path)))
    if {"kasan", "kcsan"} <= {n for n, _ in out}:
        raise KbuildError("--debug kasan and kcsan exclude each other (the kernel refuses both): pick one")
    return out


_FRAG_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_FRAG_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")
_OPTIONAL_ON = "# fsrace: optional"
_OPTIONAL_OFF = "# fsrace: required"


def parse_config(text, origin="<config>", strict=True, optional=None):
    """Parse a Kconfig fragment or .config into {symbol: value or None (not set)}.

    Strict mode (fragments) rejects lines that are neither settings, comments nor
    blank, and "=n" (kconfig writes that as "is not set"). When `optional` is a set,
    the symbols between "# fsrace: optional" and "# fsrace: required" are added to it.
    """
    out = {}
    opt = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line == _OPTIONAL_ON:
            opt = True
            continue
        if line == _OPTIONAL_OFF:
            opt = False
            continue
        m = _FRAG_SET.match(line)
        if m:
            sym, val = m.group(1), m.group(2)
            if strict and val == "n":
                raise KbuildError(f"{origin}:{lineno}: write '# {sym} is not set' instead of {sym}=n")
            out[sym] = None if val == "n" else val
        else:
            m = _FRAG_UNSET.match(line)
            if m:
                sym = m.group(1)
                out[sym] = None
            elif strict and line and not line.startswith("#"):
                raise KbuildError(f"{origin}:{lineno}: not a Kconfig line: {line!r}")
            else:
                continue
        if optional is not None:
            (optional.add if opt else optional.discard)(sym)
    return out


def requested_config(fragments):
    """(requested {sym: value}, optional symbols) over the fragments, later ones winning."""
    requested, optional = {}, set()
    for frag in fragments:
        requested.update(parse_config(Path(frag).read_text(), origin=str(frag), optional=optional))
    return requested, optional


def overlay_config(config_text, requested):
    """A .config with the requested values replacing (or added after) the base's."""
    pat = re.compile(r"^(?:# )?(CONFIG_[A-Za-z0-9_]+)(?:=| is not set)")
    kept = [l for l in config_text.splitlines()
            if not ((m := pat.match(l)) and m.group(1) in requested)]
    kept.append("# --- fsrace fragments")
    for sym, val in requested.items():
        kept.append(f"{sym}={val}" if val is not None else f"# {sym} is not set")
    return "\n".join(kept) + "\n"


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


def verify_config(requested, optional, final_text):
    """(missing required, missing optional) lists after olddefconfig."""
    final = parse_config(final_text, strict=False)
    req = {s: v for s, v in requested.items() if s not in optional}
    opt = {s: v for s, v in requested.items() if s in optional}
    return config_mismatches(req, final), config_mismatches(opt, final)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def config_inputs_id(fragments):
    """Identity of the configuration inputs: the base config method + fragment contents."""
    h = hashlib.sha256(f"{BASE_CONFIG}+{GUEST_BASE_FRAGMENT}".encode())
    for frag in fragments:
        h.update(b"\0" + Path(frag).read_bytes())
    return h.hexdigest()


def _digest(obj, n=12):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def work_key(location, mode, config_id):
    """The O= directory: one per (source location, how it is built from, config inputs), so every
    revision and patch set of one tree with one config shares its objects."""
    return _digest({"location": str(location), "mode": mode, "config": config_id})


def work_layout(cache, source, config_id):
    """(wkey, work dir, O= dir, source tree) of a build. A patched copy of Debian's tree mirrors the
    stock build's layout (cache/src/<tree> built in cache/work/<wkey>/obj): its tree at work/src/<tree>,
    its O= dir at work/work/variant/obj, so every path ccache sees (relative to the O= dir through
    CCACHE_BASEDIR) is the stock build's, its objects hit the stock build's cache entries and only the
    files the patch touches compile."""
    cache = Path(cache)
    mirrored = source.private and source.kind == "debian"
    mode = "private-mirrored" if mirrored else "private" if source.private else "in-place"
    wkey = work_key(source.location, mode, config_id)
    work = cache / "work" / wkey
    if not source.private:
        return wkey, work, work / "obj", Path(source.tree)
    if mirrored:
        return wkey, work, work / "work" / "variant" / "obj", work / "src" / Path(source.tree).name
    return wkey, work, work / "obj", work / "src"


def build_id(source, patches_sha, config_id, name, compiler):
    """Everything that decides the image."""
    return _digest({"source": source, "patches": patches_sha, "config": config_id,
                    "name": name or "", "compiler": compiler})


def summarize_patch_failure(patch_name, output, tree_desc=PACKAGE):
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
    return f"patch {patch_name} does not apply to {tree_desc}: " + "; ".join(dict.fromkeys(failed))


_ERR_PATTERNS = (r"\berror:|undefined reference|Error: |fatal error|No rule to make target",
                 r"Error \d+|\*\*\*|FAILED")


def build_errors(log_text, limit=3):
    """The first error lines of the last `make` build run in a build log (may be empty)."""
    start = log_text.rfind("\n$ make ")
    marker = log_text.rfind("\n$ make build")
    start = marker if marker >= 0 else start
    lines = log_text[start + 1 if start >= 0 else 0:].splitlines()[1:]
    for pattern in _ERR_PATTERNS:
        hits = [l.strip()[:200] for l in lines if re.search(pattern, l)]
        if hits:
            return list(dict.fromkeys(hits))[:limit]
    return []


def first_build_error(log_text):
    errs = build_errors(log_text, 1)
    return errs[0] if errs else None


# kbuild's quiet output ("  CC      fs/ext4/inode.o") -> build phase
_PHASES = [
    (re.compile(r"^\s+(?:HOSTCC|HOSTLD|YACC|LEX|SYSHDR|SYSTBL|WRAP|UPD|GEN|DESCEND|MKELF)\s"), "prepare"),
    (re.compile(r"^\s+(?:CC|AS|AR|CPP|LDS|CHK|MODPOST)\s"), "compile"),
    (re.compile(r"^\s+(?:LD|KSYMS|SORTTAB|SYSMAP|NM)\s+(?:vmlinux|\.tmp_vmlinux|System\.map|\.tmp)"), "link vmlinux"),
    (re.compile(r"^\s+(?:BTF|BTFIDS)\s"), "BTF (pahole)"),
    (re.compile(r"^\s+(?:OBJCOPY|BUILD|VOFFSET|ZOFFSET|GZIP|XZKERN|ZSTD22|LZ4|MKPIGGY|RELOCS)\s+arch/x86/boot"), "bzImage"),
]


class Progress:
    """Tracks make's output: phase, compiled objects, and prints a line per PROGRESS_EVERY seconds
    (or a redrawn line on a terminal)."""

    def __init__(self, what, out=None, tty=None, every=PROGRESS_EVERY, clock=time.monotonic):
        self.what = what
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.every = every
        self.clock = clock
        self.t0 = clock()
        self.last = self.t0
        self.phase = "configure"
        self.compiled = 0
        self.lock = threading.Lock()

    def set_phase(self, phase):
        with self.lock:
            self.phase = phase

    def feed(self, line):
        with self.lock:
            for pat, phase in _PHASES:
                if pat.match(line):
                    if phase == "compile" and re.match(r"^\s+CC\s", line):
                        self.compiled += 1
                    if phase != "compile" or self.phase in ("configure", "prepare", "compile"):
                        self.phase = phase
                    break

    def line(self):
        el = int(self.clock() - self.t0)
        with self.lock:
            extra = f", {self.compiled} objects compiled" if self.compiled else ""
            return f"kbuild: {self.what}: {self.phase}{extra}, {el // 60}m{el % 60:02d}s elapsed"

    def tick(self, force=False):
        now = self.clock()
        if self.tty:
            if force or now - self.last >= 1:
                self.last = now
                self.out.write("\r" + self.line() + "\x1b[K")
                self.out.flush()
        elif force or now - self.last >= self.every:
            self.last = now
            print(self.line(), file=self.out, flush=True)

    def done(self):
        if self.tty:
            self.out.write("\r\x1b[K")
            self.out.flush()


def write_json(path, data):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- builds in the cache

def list_builds(cache):
    """Finished builds (builds/<id>/kbuild.json), newest first. Half-written ones are dot dirs."""
    out = []
    bdir = Path(cache) / "builds"
    if not bdir.is_dir():
        return out
    for d in bdir.iterdir():
        if d.name.startswith(".") or not ID_RE.match(d.name):
            continue
        meta = read_json(d / "kbuild.json")
        if meta and (d / "bzImage").is_file():
            out.append(meta)
    out.sort(key=lambda m: m.get("built_at", ""), reverse=True)
    return out


def find_build(cache, spec):
    """A build by id, unique id prefix (>= 4 hex digits) or name (the newest of that name)."""
    builds = list_builds(cache)
    exact = [m for m in builds if m["id"] == spec]
    if exact:
        return exact[0]
    if re.match(r"^[0-9a-f]{4,12}$", spec or ""):
        pre = [m for m in builds if m["id"].startswith(spec)]
        if len(pre) == 1:
            return pre[0]
        if len(pre) > 1:
            raise KbuildError(f"kernel build id {spec} is ambiguous ({', '.join(m['id'] for m in pre)}): give more digits")
    named = [m for m in builds if m.get("name") == spec]
    if named:
        return named[0]
    return None


# ---------------------------------------------------------------- side effects

def log(msg):
    print(f"kbuild: {msg}", flush=True)


def warn(msg):
    print(f"kbuild: warning: {msg}", file=sys.stderr, flush=True)


def run(cmd, cwd=None, logfile=None, check=True, quiet=False, env=None):
    if logfile is not None:
        with open(logfile, "a") as f:
            f.write(f"\n$ {' '.join(map(str, cmd))}\n")
            f.flush()
            r = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env)
    else:
        r = subprocess.run(cmd, cwd=cwd, capture_output=quiet, text=True, env=env)
    if check and r.returncode != 0:
        where = f"; log: {logfile}" if logfile else ""
        if quiet and not logfile:
            last = ((r.stderr or r.stdout or "").strip().splitlines() or ["no output"])[-1]
            where = f": {last[:200]}"
        raise KbuildError(f"command failed (exit {r.returncode}): {' '.join(map(str, cmd))}{where}")
    return r


def git(repo, *args, check=True):
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise KbuildError(f"git {' '.join(args)} in {repo} failed: {last}")
    return r.stdout.strip() if check else r


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


def check_build_tools(extra=()):
    """extra: (executable, package) pairs this build needs besides the compiler set."""
    tools = dict(BUILD_TOOLS)
    tools.update(dict(extra))
    missing = sorted({pkg for exe, pkg in tools.items() if shutil.which(exe) is None}
                     | {pkg for hdr, pkg in BUILD_HEADERS.items() if not Path(hdr).exists()})
    if missing:
        raise KbuildError(f"missing build tools: install the Debian packages {' '.join(missing)} "
                          f"(apt-get install {' '.join(missing)}, or sudo tools/install-kbuild-deps.sh)")


def compiler_version():
    r = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    return (r.stdout.splitlines() or ["gcc ?"])[0].strip()


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
    with locked(src_parent / f"{top}.lock", f"the unpacked {top}"):
        if tree.is_dir():
            if read_json(mark) == sid:
                return tree, sid
            log(f"source at {tree} is stale or incomplete; unpacking again")
            shutil.rmtree(tree)
        tmp = src_parent / f".unpack-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        log(f"unpacking {tarball} into {src_parent}")
        run(["tar", "-xf", str(tarball), "-C", str(tmp)])
        os.replace(tmp / top, tree)
        shutil.rmtree(tmp, ignore_errors=True)
        write_json(mark, sid)
    return tree, sid


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


def apply_patch(tree, patch, tree_desc=PACKAGE):
    dry = subprocess.run(["patch", "-p1", "-f", "--dry-run", "-i", str(patch)],
                         cwd=tree, capture_output=True, text=True)
    if dry.returncode != 0:
        raise KbuildError(summarize_patch_failure(patch.name, dry.stdout + dry.stderr, tree_desc))
    run(["patch", "-p1", "-f", "-s", "--no-backup-if-mismatch", "-i", str(patch)], cwd=tree, quiet=True)


def check_kernel_tree(src):
    """Raise unless src is the top of a Linux source tree."""
    src = Path(src)
    if not src.is_dir():
        raise KbuildError(f"--src {src} is not a directory: pass the top of a Linux kernel source tree")
    mk = src / "Makefile"
    try:
        head = mk.read_text(errors="replace")[:4000]
    except OSError:
        head = ""
    if not (re.search(r"^VERSION = \d+", head, re.M) and (src / "Kconfig").is_file()
            and (src / "arch" / "x86").is_dir() and (src / "scripts" / "kconfig").is_dir()):
        raise KbuildError(f"{src} is not a Linux kernel source tree (no top-level Makefile with VERSION, "
                          f"Kconfig, arch/x86, scripts/kconfig): pass the top of a kernel tree with --src")


def kernel_version(src):
    head = (Path(src) / "Makefile").read_text(errors="replace")[:4000]
    v = {k: (re.search(rf"^{k} = (\S*)", head, re.M) or [None, ""])[1]
         for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION")}
    return f"{v['VERSION']}.{v['PATCHLEVEL']}.{v['SUBLEVEL'] or 0}{v['EXTRAVERSION']}"


def check_no_in_tree_build(src, why):
    """O= refuses a source tree that holds an in-tree build; say so before make does."""
    leftovers = [p for p in (".config", "include/config", "arch/x86/include/generated") if (Path(src) / p).exists()]
    if leftovers:
        raise KbuildError(f"{src} holds an in-tree build ({', '.join(leftovers)}), which an out-of-tree (O=) build "
                          f"refuses: run 'make mrproper' there{why}")


def git_toplevel(src):
    r = subprocess.run(["git", "-C", str(src), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    top = Path(r.stdout.strip()).resolve()
    return top if top == Path(src).resolve() else None


def tree_fingerprint(src):
    """Identity of a non-git tree: file count, total size and newest mtime (any edit changes it)."""
    n = size = newest = 0
    for dirpath, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d not in (".git",)]
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            n += 1
            size += st.st_size
            newest = max(newest, st.st_mtime_ns)
    return {"files": n, "bytes": size, "newest_mtime_ns": newest}


def kconfig_fingerprint(src):
    """Hash of every Kconfig file and the config fragments in the tree: when it is unchanged (and the
    config inputs are), the .config of the last configure run still holds."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for f in sorted(files):
            if f.startswith("Kconfig") or (f.endswith(".config") and "configs" in dirpath):
                p = os.path.join(dirpath, f)
                h.update(os.path.relpath(p, src).encode() + b"\0")
                try:
                    h.update(Path(p).read_bytes())
                except OSError:
                    pass
    h.update(kernel_version(src).encode())
    return h.hexdigest()


class Source:
    """Where a build's source comes from and how it is made ready in the work dir."""

    def __init__(self, kind, location, desc, src_id, tree=None, commit=None, describe=None, rev=None,
                 dirty_diff=None, private=False):
        self.kind = kind              # "git" | "tree" | "debian"
        self.location = location      # the user's tree (or git common dir), for the work key
        self.desc = desc
        self.src_id = src_id          # JSON-able identity for the build id
        self.tree = tree              # the tree to build from when not private
        self.commit = commit
        self.describe = describe
        self.rev = rev
        self.dirty_diff = dirty_diff  # bytes of `git diff HEAD --binary` (with --allow-dirty)
        self.private = private        # build from work/<wkey>/src


def inspect_source(src, rev, allow_dirty, patches):
    """The --src tree (and --rev) -> Source, with every refusal before anything is written."""
    check_kernel_tree(src)
    src = Path(src).resolve()
    top = git_toplevel(src) if shutil.which("git") else None
    if top is None:
        if rev:
            if not shutil.which("git"):
                raise KbuildError("--rev needs git: apt-get install git")
            raise KbuildError(f"--rev {rev} needs a git work tree, and {src} is not the top of one")
        check_no_in_tree_build(src, " (or build from a clean copy of it)")
        fp = tree_fingerprint(src)
        return Source("tree", src, f"{src} ({kernel_version(src)})", {"tree": str(src), **fp},
                      tree=src, private=bool(patches))
    # A git tree is always built from the build's own clone checked out at the commit: the user's
    # tree (its files, index and .git) is only read.
    want = rev or "HEAD"
    r = git(src, "rev-parse", "--verify", "--quiet", f"{want}^{{commit}}", check=False)
    if r.returncode != 0:
        raise KbuildError(f"revision {want!r} is not a commit in {src} (git rev-parse found nothing)")
    commit = r.stdout.strip()
    describe = git(src, "describe", "--tags", "--always", "--abbrev=12", commit, check=False).stdout.strip() or None
    diff = None
    if not rev:
        status = git(src, "status", "--porcelain", "--untracked-files=no", check=False).stdout
        if status.strip():
            files = [l[3:] for l in status.splitlines() if l.strip()]
            if not allow_dirty:
                raise KbuildError(f"{src} has uncommitted changes ({len(files)} files, e.g. {files[0]}): commit or "
                                  f"stash them, build a commit with --rev, or pass --allow-dirty to build them too")
            diff = subprocess.run(["git", "-C", str(src), "diff", "HEAD", "--binary"], capture_output=True).stdout
    common = Path(git(src, "rev-parse", "--path-format=absolute", "--git-common-dir")).resolve()
    src_id = {"git": str(common), "commit": commit}
    if diff is not None:
        src_id["dirty_diff_sha256"] = hashlib.sha256(diff).hexdigest()
    desc = f"{src} at {describe or commit[:12]}{' + uncommitted changes' if diff is not None else ''}"
    return Source("git", common, desc, src_id, commit=commit, describe=describe, rev=rev,
                  dirty_diff=diff, private=True)


def debian_source(cache, allow_apt, patched):
    """Debian's tarball, unpacked once into the cache: the stock build builds it in place (O=), a patched
    variant from an rsync copy that gets the patches (one copy and O= dir for all patched variants)."""
    tarball = ensure_source_package(allow_apt=allow_apt)
    pristine, sid = ensure_unpacked(cache, tarball)
    return Source("debian", pristine, f"{PACKAGE} {sid.get('package_version') or ''}".strip(),
                  {"debian": sid}, tree=pristine, private=patched)


def prepare_private_tree(source, work_src, patches, logfile):
    """Make work/<wkey>/src the source at the commit / the tree's current state, plus the patches.
    Only files that differ from the last build's tree get a new mtime, so make rebuilds just those."""
    if source.kind == "git":
        if not (work_src / ".git").exists():
            shutil.rmtree(work_src, ignore_errors=True)
            log(f"cloning {source.location} (shared objects, no copy of the history) into {work_src}")
            run(["git", "clone", "-q", "--shared", "--no-checkout", str(source.location), str(work_src)],
                logfile=logfile)
        run(["git", "-C", str(work_src), "checkout", "-q", "-f", "--detach", source.commit], logfile=logfile)
        run(["git", "-C", str(work_src), "clean", "-q", "-f", "-d", "-x"], logfile=logfile)
        if source.dirty_diff:
            p = subprocess.run(["git", "-C", str(work_src), "apply", "--whitespace=nowarn"],
                               input=source.dirty_diff, capture_output=True)
            if p.returncode != 0:
                raise KbuildError(f"cannot apply the uncommitted changes of {source.desc} to the build's checkout: "
                                  f"{(p.stderr.decode(errors='replace').strip().splitlines() or ['?'])[-1]}")
    else:
        work_src.mkdir(parents=True, exist_ok=True)
        # By content, not by mtime, and without copying mtimes: a file that differs from the last
        # build's copy (restored after a patch, or edited in the source) is written with the current
        # time and so is newer than its object; identical files keep theirs.
        r = subprocess.run(["rsync", "-rlpD", "--checksum", "--delete", "--exclude", UNPACKED_MARK,
                            f"{source.tree}/", f"{work_src}/"], capture_output=True, text=True)
        if r.returncode != 0:
            raise KbuildError(f"rsync of {source.tree} into {work_src} failed: "
                              f"{(r.stderr.strip().splitlines() or ['?'])[-1]}")
    for patch in patches:
        log(f"applying {patch.name}")
        apply_patch(work_src, patch, source.desc)


def make_base(src, obj, cc, jobs=None):
    cmd = ["make", "-C", str(src), f"O={obj}", f"CC={cc}"]
    if jobs:
        cmd.insert(1, f"-j{jobs}")
    return cmd


def configure(src, obj, cc, fragments, logfile, env, stamp):
    """allnoconfig + kvm_guest.config + fragments + olddefconfig, then the check. Skipped when the
    config inputs, the tree's Kconfig files and the compiler are those of the last run in this obj dir."""
    requested, optional = requested_config(fragments)
    cid = config_inputs_id(fragments)
    kfp = kconfig_fingerprint(src)
    cfg = Path(obj) / ".config"
    if not (stamp.get("config_inputs") == cid and stamp.get("kconfig") == kfp and stamp.get("cc") == cc
            and cfg.exists()):
        base = make_base(src, obj, cc)
        run(base + [BASE_CONFIG], logfile=logfile, env=env)
        if (Path(src) / "kernel" / "configs" / GUEST_BASE_FRAGMENT).is_file():
            run(base + [GUEST_BASE_FRAGMENT], logfile=logfile, env=env)
        else:
            warn(f"{src} has no kernel/configs/{GUEST_BASE_FRAGMENT} (older than 5.10?): "
                 f"using kernels/guest.config alone")
        cfg.write_text(overlay_config(cfg.read_text(), requested))
        run(base + ["olddefconfig"], logfile=logfile, env=env)
        stamp.update(config_inputs=cid, kconfig=kfp, cc=cc)
    missing, missing_opt = verify_config(requested, optional, cfg.read_text())
    if missing:
        stamp.pop("config_inputs", None)
        hint = ""
        if any(m.startswith("CONFIG_DEBUG_INFO_BTF=") for m in missing):
            hint = " (DEBUG_INFO_BTF needs pahole >= 1.16 from the Debian package dwarves)"
        raise KbuildError(f"{len(missing)} requested config options are not set after olddefconfig (unknown to this "
                          f"tree or an unmet dependency){hint}: {', '.join(missing[:10])}"
                          f"{' ...' if len(missing) > 10 else ''}")
    if missing_opt:
        warn(f"optional config options not set in this tree (going on): {', '.join(missing_opt)}")
    return cid, missing_opt


def run_make(cmd, logfile, env, progress):
    """make with its output into the log, progress on stdout; returns the exit status."""
    with open(logfile, "a") as f:
        f.write(f"\n$ make build: {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, errors="replace", bufsize=1, env=env)

        def pump():
            for line in proc.stdout:
                f.write(line)
                progress.feed(line)
            f.flush()

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            while True:
                try:
                    proc.wait(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    progress.tick()
        except BaseException:
            if proc.poll() is None:       # only the make we started, by its pid
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            raise
        finally:
            t.join(timeout=10)
            proc.stdout.close()
            progress.done()
    return proc.returncode


def build(args):
    t_start = time.monotonic()
    cache = cache_root(args.cache)
    name = validate_variant(args.variant) if args.variant else None
    if args.rev and not args.src:
        raise KbuildError("--rev needs --src (a git tree); without --src the source is Debian's linux-source-6.1")
    if name is None and not args.src:
        raise KbuildError("say what to build: --src DIR (any kernel tree), or a name such as "
                          + ", ".join(KNOWN_VARIANTS) + " (Debian's linux-source-6.1)")
    patches = resolve_patches(name, args.patch)
    for p in patches:
        if not p.is_file():
            raise KbuildError(f"patch file {p} does not exist")
    debug = debug_fragments(args.debug)
    fragments = [GUEST_FRAGMENT] + [Path(f).resolve() for f in (args.fragment or [])] + [p for _, p in debug]
    for frag in fragments:
        if not frag.is_file():
            raise KbuildError(f"config fragment {frag} does not exist")
        parse_config(frag.read_text(), origin=str(frag))    # fail early on a bad fragment
    if args.src:
        source = inspect_source(args.src, args.rev, args.allow_dirty, patches)
    else:
        if args.rev:
            raise KbuildError("--rev needs --src (a git tree); without --src the source is Debian's linux-source-6.1")
        source = None
    extra = [("git", "git")] if source is not None and source.kind == "git" else []
    if patches:
        extra.append(("patch", "patch"))
    if patches and (source is None or source.kind != "git"):
        extra.append(("rsync", "rsync"))
    if source is None:
        extra.append(("xz", "xz-utils"))
    check_build_tools(extra)
    if source is None:
        source = debian_source(cache, allow_apt=not args.no_apt, patched=bool(patches))

    use_ccache = not args.no_ccache and shutil.which("ccache") is not None
    if not args.no_ccache and not use_ccache:
        warn("ccache not found (Debian package ccache): building without it")
    cc = "ccache gcc" if use_ccache else "gcc"
    compiler = compiler_version()
    cid = config_inputs_id(fragments)
    patches_sha = [sha256_file(p) for p in patches]
    bid = build_id(source.src_id, patches_sha, cid, name, compiler)
    out = cache / "builds" / bid
    if (out / "kbuild.json").is_file() and (out / "bzImage").is_file() and not args.force:
        meta = read_json(out / "kbuild.json") or {}
        log(f"{bid} already built ({meta.get('release')}, {source.desc}); --force rebuilds it")
        print(out / "bzImage")
        return 0

    wkey, work, obj, src_tree = work_layout(cache, source, cid)
    env = dict(os.environ)
    if use_ccache:
        ccd = ccache_dir()
        ccd.mkdir(parents=True, exist_ok=True)
        # Relative paths below the cache and no cwd in the hash: another work dir of the same
        # sources (another clone, a new config) still hits.
        env.update(CCACHE_DIR=str(ccd), CCACHE_BASEDIR=str(cache), CCACHE_NOHASHDIR="1")
    what = name or bid
    with locked(cache / "work" / f"{wkey}.lock", f"work dir {wkey}"):
        obj.mkdir(parents=True, exist_ok=True)
        stamp = read_json(work / WORK_STAMP) or {}
        logfile = work / f"build-{bid}.log"
        logfile.write_text(f"# fsrace kbuild {bid}: {source.desc}\n")
        stamp.update(building=bid)
        write_json(work / WORK_STAMP, stamp)
        progress = Progress(what)
        log(f"{what}: {source.desc}; work dir {work}; log {logfile}")
        t0 = time.monotonic()
        if source.private:
            progress.set_phase("source")
            prepare_private_tree(source, src_tree, patches, logfile)
        prep_secs = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        log(f"{what}: config ({BASE_CONFIG} + {GUEST_BASE_FRAGMENT} + "
            f"{', '.join(f.name for f in fragments)}; skipped when unchanged since the last build here)")
        cid, missing_opt = configure(src_tree, obj, cc, fragments, logfile, env, stamp)
        write_json(work / WORK_STAMP, stamp)
        cfg_secs = round(time.monotonic() - t0, 1)
        if args.config_only:
            log(f"{what}: configured and verified in {cfg_secs}s (--config-only: not built)")
            print(obj / ".config")
            return 0
        jobs = args.jobs or os.cpu_count() or 1
        cmd = make_base(src_tree, obj, cc, jobs) + [f"LOCALVERSION={'-' + name if name else ''}", MAKE_TARGET]
        log(f"{what}: building ({' '.join(cmd)})")
        t0 = time.monotonic()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        progress.set_phase("prepare")
        rc = run_make(cmd, logfile, env, progress)
        secs = round(time.monotonic() - t0, 1)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = round((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), 1)
        if rc != 0:
            errs = build_errors(logfile.read_text(errors="replace")) or ["no error line found"]
            raise KbuildError(f"build of {what} failed (make exit {rc}) after {secs}s: {' | '.join(errs)}; "
                              f"full log: {logfile}")
        release = (obj / "include/config/kernel.release").read_text().strip()
        tmp = cache / "builds" / f".tmp-{bid}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            for dst, rel in (("bzImage", "arch/x86/boot/bzImage"), ("vmlinux", "vmlinux"),
                             ("System.map", "System.map"), (".config", ".config")):
                shutil.copy2(obj / rel, tmp / dst)
            if patches:
                (tmp / "patches").mkdir()
                for p in patches:
                    shutil.copy2(p, tmp / "patches" / p.name)
            meta = {
                "id": bid,
                "name": name,
                "release": release,
                "source": {"kind": source.kind, "desc": source.desc,
                           "path": str(args.src and Path(args.src).resolve() or source.tree),
                           "identity": source.src_id},
                "git": ({"commit": source.commit, "describe": source.describe, "rev": source.rev,
                         "dirty": source.dirty_diff is not None} if source.kind == "git" else None),
                "patches": [{"name": p.name, "path": str(p), "sha256": s} for p, s in zip(patches, patches_sha)],
                "fragments": [str(f) for f in fragments],
                "debug": [n for n, _ in debug],
                "config_base": f"{BASE_CONFIG} + {GUEST_BASE_FRAGMENT}",
                "config_sha256": sha256_file(tmp / ".config"),
                "config_inputs_sha256": cid,
                "config_optional_missing": missing_opt,
                "compiler": compiler,
                "cc": cc,
                "ccache_dir": env.get("CCACHE_DIR"),
                "jobs": jobs,
                "build_seconds": secs,
                # CPU time of make and everything it ran: build_seconds under load, this without it
                "cpu_seconds": cpu,
                "load_average_at_end": os.getloadavg()[0],
                "configure_seconds": cfg_secs,
                "source_seconds": prep_secs,
                "total_seconds": round(time.monotonic() - t_start, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "host": os.uname().nodename,
                "bzImage": str(out / "bzImage"),
                "vmlinux": str(out / "vmlinux"),
                "work_dir": str(work),
                "log": str(out / "build.log"),
            }
            if source.kind == "debian":
                meta["package"] = PACKAGE
                meta["package_version"] = source.src_id["debian"].get("package_version")
            write_json(tmp / "kbuild.json", meta)
            shutil.copy2(logfile, tmp / "build.log")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logfile.unlink(missing_ok=True)
        stamp.pop("building", None)
        stamp.update(last_built=bid)
        write_json(work / WORK_STAMP, stamp)
    log(f"{what}: {release} built in {secs}s (make, {cpu}s CPU; configure {cfg_secs}s, source {prep_secs}s) "
        f"-> id {bid}")
    print(out / "bzImage")
    return 0


def cmd_list(args):
    cache = cache_root(args.cache)
    builds = list_builds(cache)
    if args.json:
        print(json.dumps(builds, indent=2, sort_keys=True))
        return 0
    if not builds:
        print(f"no kernel builds in {cache / 'builds'} (fsrace kernel build --src DIR, or kbuild.py build stock)")
        return 0
    print(f"{'id':12}  {'name':22} {'release':34} {'source':36} {'make s':>7}  built")
    for m in builds:
        src = (m.get("git") or {}).get("describe") or (m.get("source") or {}).get("desc", "?")
        if m.get("patches"):
            src += " +" + ",".join(p["name"] for p in m["patches"])
        if m.get("debug"):
            src += " debug:" + ",".join(m["debug"])
        print(f"{m['id']:12}  {m.get('name') or '-':22} {m.get('release', '?'):34} {src[:36]:36} "
              f"{m.get('build_seconds', 0):7.0f}  {m.get('built_at', '?')}")
    return 0


def lookup(cache, spec, hint=""):
    m = find_build(cache, spec)
    if m is None:
        raise KbuildError(f"no kernel build {spec!r} in {cache / 'builds'} "
                          f"({hint or 'fsrace kernel list shows the builds'})")
    return m


def cmd_path(args):
    cache = cache_root(args.cache)
    m = lookup(cache, args.variant, f"build it: python3 kernels/kbuild.py build {args.variant}")
    name = ".config" if args.file == "config" else args.file
    p = cache / "builds" / m["id"] / name
    if not p.exists():
        raise KbuildError(f"kernel build {m['id']} has no {name}")
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
    cache = cache_root(args.cache)
    m = lookup(cache, args.variant)
    out = cache / "builds" / m["id"]
    image = out / args.image
    if shutil.which("qemu-system-x86_64") is None:
        raise KbuildError("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
    console_log = out / f"boot-{args.image}.log"
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
    ok, why = judge_boot(console_log.read_text(errors="replace"), m["release"])
    if not ok:
        raise KbuildError(f"boot check of {args.variant} ({args.image}) failed after {secs}s: {why}; "
                          f"console: {console_log}")
    log(f"{args.variant} ({args.image}): boots, {m['release']}, {why}, {secs}s")
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


class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line, exit 2 (argparse prints usage otherwise)
        print(f"kbuild: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    ap = _Parser(prog="fsrace kernel", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help=f"kernel cache dir (default {DEFAULT_CACHE} or $FSRACE_KERNEL_CACHE)")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    b = sub.add_parser("build", help="build (or find in the cache) a guest kernel; prints the bzImage path last")
    b.add_argument("variant", nargs="?", metavar="NAME",
                   help="build name (LOCALVERSION -NAME); without --src one of " + ", ".join(KNOWN_VARIANTS)
                   + " or any name: Debian's linux-source-6.1 with that variant's patch")
    b.add_argument("--src", help="kernel source tree to build (a git work tree is built from the build's own "
                   "checkout, so it is never modified)")
    b.add_argument("--rev", help="git revision of --src to build (default: HEAD, refused when the tree is dirty)")
    b.add_argument("--allow-dirty", action="store_true", help="build a git tree's uncommitted changes too")
    b.add_argument("--patch", action="append", help="patch (repeatable): a name in kernels/patches, a path, "
                   "or 'none' (default: the known variant's patch)")
    b.add_argument("--fragment", action="append", help="extra config fragment (repeatable)")
    b.add_argument("--debug", help="debug config sets, comma-separated: "
                   + ",".join(sorted({p.stem for p in DEBUG_DIR.glob('*.config')} | set(DEBUG_ALIASES))))
    b.add_argument("-j", "--jobs", type=int, default=0, help="make -j (default: the number of CPUs)")
    b.add_argument("--force", action="store_true", help="rebuild even when the cache holds this build")
    b.add_argument("--config-only", action="store_true",
                   help="stop after configuring and verifying the options; print the .config path")
    b.add_argument("--no-ccache", action="store_true")
    b.add_argument("--no-apt", action="store_true", help="never run apt-get")
    b.set_defaults(func=build)
    l = sub.add_parser("list", help="the finished builds in the cache")
    l.add_argument("--json", action="store_true")
    l.set_defaults(func=cmd_list)
    p = sub.add_parser("path", help="print the path of a build's artifact")
    p.add_argument("variant", metavar="ID-or-NAME")
    p.add_argument("--file", default="bzImage",
                   choices=["bzImage", "vmlinux", "System.map", "config", ".config", "kbuild.json", "build.log"])
    p.set_defaults(func=cmd_path)
    bc = sub.add_parser("boot-check", help="smoke-boot a build in QEMU/TCG without a root disk")
    bc.add_argument("variant", metavar="ID-or-NAME")
    bc.add_argument("--image", default="bzImage", choices=["bzImage", "vmlinux"],
                    help="vmlinux exercises the PVH direct-boot entry")
    bc.add_argument("--timeout", type=int, default=300)
    bc.set_defaults(func=cmd_boot_check)
    c = sub.add_parser("check-patches", help="dry-run every kernels/patches/*.patch on the pristine source")
    c.add_argument("--no-apt", action="store_true")
    c.set_defaults(func=cmd_check_patches)
    try:
        args = ap.parse_args(argv)
        if getattr(args, "jobs", 0) < 0:
            ap.error("--jobs must be >= 0")
    except SystemExit as e:              # --help (0) or a usage error (2, one line)
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.func(args)
    except KbuildError as e:
        print(f"kbuild: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kbuild: interrupted (nothing was added to the kernel list)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
