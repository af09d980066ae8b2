#!/usr/bin/python3
"""Runs every row of docs/bad-inputs.md and checks what the row says: exit 2, exactly one line on stderr,
and that line is the row's error (`{T}` is this test's scratch directory, `...` matches anything, e.g. a
loop device number). The fixtures the rows use are the doc's own code blocks (a line "`{T}/NAME`:" then
a fenced block), so the catalogue cannot go stale without this test failing. A run made before the rows
must be byte-identical after them (nothing already written is lost).

    FSRACE_BIN=build/harness/fsrace /usr/bin/python3 tests/integration/bad_inputs_catalogue.py [ROW ...]
Exit 0 all rows right, 1 a row wrong (each printed), 77 skipped (not root / no loop device / no mkfs.ext4).
"""
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
DOC = TOP / "docs" / "bad-inputs.md"


def parse(doc: str):
    """(fixtures {name: text}, rows [(id, what, command, error)]) from the catalogue's markdown."""
    fixtures = {}
    for m in re.finditer(r"^`\{T\}/([^`]+)`:\n+```[a-z]*\n(.*?)^```", doc, re.M | re.S):
        fixtures[m.group(1)] = m.group(2)
    rows = []
    for line in doc.splitlines():
        m = re.match(r"^\|\s*(\d+)\s*\|(.*)\|\s*`(.+)`\s*\|\s*`(.+)`\s*\|\s*$", line)
        if m:
            rows.append((int(m.group(1)), m.group(2).strip(), m.group(3), m.group(4)))
    return fixtures, rows


def pattern(expected: str, subst: dict) -> re.Pattern:
    """The row's error as a full-line regex: literal text, {T} etc. substituted, '...' = anything."""
    parts = []
    for piece in expected.split("..."):
        for k, v in subst.items():
            piece = piece.replace("{" + k + "}", v)
        parts.append(re.escape(piece))
    return re.compile("^" + ".*".join(parts) + "$")


def tree_digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(d)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main(argv) -> int:
    fsrace = os.environ.get("FSRACE_BIN", str(TOP / "build" / "harness" / "fsrace"))
    if os.geteuid() != 0:
        print("SKIP: needs root (several rows mount or need loop devices)")
        return 77
    if not Path("/dev/loop-control").exists() or not shutil.which("mkfs.ext4"):
        print("SKIP: no loop devices or no mkfs.ext4 (make deps)")
        return 77
    fixtures, rows = parse(DOC.read_text())
    if len(rows) < 30:
        print(f"FAIL: docs/bad-inputs.md has {len(rows)} rows, the catalogue promises at least 30")
        return 1
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        print(f"FAIL: duplicate row numbers in docs/bad-inputs.md: {sorted(i for i in ids if ids.count(i) > 1)}")
        return 1
    want = {int(a) for a in argv}
    tmp = Path(tempfile.mkdtemp(prefix="fsrace-badcat.", dir="/var/tmp"))
    try:
        subst = {"T": str(tmp)}
        for name, text in fixtures.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text.replace("{T}", str(tmp)))
        env = dict(os.environ, FSRACE_TOP=str(TOP), PATH=f"{tmp / 'bin'}:{os.environ.get('PATH', '')}")
        (tmp / "bin").mkdir(exist_ok=True)
        os.symlink(fsrace, tmp / "bin" / "fsrace")
        (tmp / "work").mkdir(exist_ok=True)
        # an earlier run that every row must leave as it is
        subprocess.run([fsrace, "run", "--quiet", "--workdir", str(tmp / "work"), str(TOP / "campaigns/default.toml"),
                        "--fs", "ext4", "--scenario", "punch-vs-read", "--duration", "0.5",
                        "--results", str(tmp / "res")], env=env, capture_output=True, timeout=300)
        runs = sorted((tmp / "res").glob("*/*/findings.json"))
        if not runs:
            print("FAIL: the setup run wrote no run directory")
            return 1
        earlier = runs[0].parent
        os.symlink(earlier, tmp / "earlier")
        before = tree_digest(earlier)
        bad = 0
        for rid, what, cmd, expected in rows:
            if want and rid not in want:
                continue
            if what.startswith("[no-kvm]") and Path("/dev/kvm").exists():
                print(f"skip #{rid} {what}: this machine has /dev/kvm")
                continue
            line = cmd.replace("{T}", str(tmp))
            r = subprocess.run(["/bin/sh", "-c", line], env=env, cwd=tmp, capture_output=True, text=True,
                               timeout=600)
            err = r.stderr.rstrip("\n").split("\n") if r.stderr.strip() else []
            problems = []
            if r.returncode != 2:
                problems.append(f"exit {r.returncode}, expected 2")
            if len(err) != 1:
                problems.append(f"{len(err)} lines on stderr, expected 1")
            elif not pattern(expected, subst).match(err[0]):
                problems.append("stderr is not the catalogue's error")
            if problems:
                bad += 1
                print(f"FAIL #{rid} {what}: {'; '.join(problems)}\n  command: {line}\n  expected: {expected}")
                for e in err[:6]:
                    print(f"  got: {e}")
            else:
                print(f"ok #{rid} {what}: {err[0]}")
        after = tree_digest(earlier)
        if after != before:
            print(f"FAIL: the earlier run {earlier} changed")
            bad += 1
        leftover = [m for m in Path("/proc/mounts").read_text().splitlines() if str(tmp) in m]
        if leftover:
            print(f"FAIL: mounts left behind: {leftover}")
            bad += 1
        print(f"{'PASS' if not bad else 'FAIL'}: {len(rows) - bad if not want else len(want) - bad} rows right, {bad} wrong")
        return 1 if bad else 0
    finally:
        for m in Path("/proc/mounts").read_text().splitlines():
            if str(tmp) in m:
                subprocess.run(["umount", "-l", m.split()[1]], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
