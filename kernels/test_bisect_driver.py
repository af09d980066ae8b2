"""The bisect driver (kernels/bisect.py) on a small synthetic git repository made in a temp dir: its build and
test are scripts (a flaky test, p = 0.3, that fails only at and after the culprit; some commits do not build).
Culprit found, skips handled, resume after SIGKILL and after SIGINT, bad inputs (one line, exit 2).

Run from the repo root: python3 -m unittest kernels.test_bisect_driver -v
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

BISECT = Path(__file__).resolve().parent / "bisect.py"
N_COMMITS = 40
CULPRIT = 23            # index in good..bad (1-based: the 23rd commit after good)
BROKEN = {10, 11, 20, 21, 24, 25}  # these commits do not build (24, 25: right after the culprit)

BUILD_SH = r"""#!/bin/sh
# build {worktree} {out}: fails where the tree has BROKEN; else "image" = a copy of the tree's state
set -e
echo "$2" >> "$3/builds.txt"
[ ! -e "$1/BROKEN" ] || { echo "error: BROKEN" >&2; exit 1; }
mkdir -p "$3/images"
img="$3/images/$2.img"
cp "$1/state" "$img"
echo "building $2"
echo "$img"
"""

TEST_PY = r"""import os, random, sys, time
img, ctl = sys.argv[1], sys.argv[2]
# a deterministic stream of random numbers across runs (a counter file), so a test is reproducible
cf = os.path.join(ctl, "counter")
k = int(open(cf).read()) if os.path.exists(cf) else 0
open(cf, "w").write(str(k + 1))
r = random.Random(1000003 * k + int(os.environ.get("SEED", "1")))
time.sleep(float(os.environ.get("SLEEP", "0")))
if r.random() < float(os.environ.get("INFRA", "0")):
    sys.exit(125)
bug = "bug=1" in open(img).read()
sys.exit(1 if bug and r.random() < 0.3 else 0)
"""


def make_repo(d):
    repo = os.path.join(d, "repo")
    os.makedirs(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e")

    def git(*a):
        return subprocess.run(["git", "-C", repo] + list(a), check=True, capture_output=True, text=True, env=env).stdout.strip()
    git("init", "-q", "-b", "main")
    Path(repo, "state").write_text("bug=0\nv=0\n")
    git("add", "-A")
    git("commit", "-qm", "good: the start")
    git("tag", "good")
    for i in range(1, N_COMMITS + 1):
        Path(repo, "state").write_text(f"bug={int(i >= CULPRIT)}\nv={i}\n")
        b = Path(repo, "BROKEN")
        if i in BROKEN:
            b.write_text("x")
        elif b.exists():
            b.unlink()
        git("add", "-A")
        git("commit", "-qm", f"commit {i}" + (" the culprit" if i == CULPRIT else ""))
        if i == CULPRIT:
            git("tag", "culprit")
    git("tag", "bad")
    # a side branch: its commit is not an ancestor of bad
    git("checkout", "-q", "-b", "side", "good")
    Path(repo, "side").write_text("x")
    git("add", "-A")
    git("commit", "-qm", "side")
    git("tag", "side")
    git("checkout", "-q", "main")
    return repo, git("rev-parse", "culprit")


class DriverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fsrace-bisect-test.")
        cls.repo, cls.culprit = make_repo(cls.tmp)
        cls.build = os.path.join(cls.tmp, "build.sh")
        Path(cls.build).write_text(BUILD_SH)
        os.chmod(cls.build, 0o755)
        cls.test = os.path.join(cls.tmp, "test.py")
        Path(cls.test).write_text(TEST_PY)
        cls.campaign = os.path.join(cls.tmp, "campaign.toml")
        Path(cls.campaign).write_text("# not read by the scripts\n")

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["git", "-C", cls.repo, "worktree", "prune"], capture_output=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def args(self, out, *extra):
        ctl = os.path.dirname(out)
        return [sys.executable, str(BISECT), "--src", self.repo, "--good", "good", "--bad", "bad", "--campaign", self.campaign,
                "--out", out, "--max-runs", "3000",
                "--build-cmd", f"{self.build} {{worktree}} {{rev}} {ctl}",
                "--test-cmd", f"{sys.executable} {self.test} {{image}} {ctl}"] + list(extra)

    def fresh(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d)
        return os.path.join(d, "out")

    def state(self, out):
        with open(os.path.join(out, "bisect.json")) as f:
            return json.load(f)

    def check_found(self, out, p):
        self.assertEqual(p.returncode, 0, p.stdout[-2000:] + p.stderr[-2000:])
        st = self.state(out)
        v = st["verdict"]
        self.assertEqual(v["kind"], "culprit")
        self.assertEqual(v["commit"], self.culprit)
        self.assertGreaterEqual(v["probability"], 0.99)
        self.assertIn(f"first bad commit: {self.culprit}", p.stdout)
        glog = Path(out, "git-bisect.log").read_text()
        self.assertIn(f"# first bad commit: [{self.culprit}]", glog)
        self.assertTrue(glog.startswith("git bisect start "))
        self.assertIn("bisect.log", os.listdir(out))
        return st

    def test_culprit_found_skips_handled(self):
        out = self.fresh("plain")
        p = subprocess.run(self.args(out), capture_output=True, text=True, env=dict(os.environ, INFRA="0.1", SEED="7"),
                           timeout=600)
        st = self.check_found(out, p)
        # the steps: commit, build s, runs with test s, detections, mass moved
        for s in st["steps"]:
            for k in ("commit", "build_s", "runs", "detections", "clean", "skips", "mass_moved", "after"):
                self.assertIn(k, s)
        outcomes = {o for _, o in st["history"]}
        self.assertIn("skip", outcomes)  # infra skips (exit 125) were seen and survived
        failed = [b["index"] for b in st["builds"] if not b["ok"]]
        self.assertTrue(set(failed) <= BROKEN, failed)
        self.assertTrue(failed, "no broken commit was tried")
        glog = Path(out, "git-bisect.log").read_text()
        self.assertIn("git bisect skip", glog)
        # commits were checked out in ONE work tree inside --out
        self.assertTrue(os.path.isdir(os.path.join(out, "tree")))
        # rerun after the verdict: nothing redone, same verdict
        n_builds = len(Path(os.path.dirname(out), "builds.txt").read_text().split())
        p2 = subprocess.run(self.args(out), capture_output=True, text=True, timeout=120)
        self.assertEqual(p2.returncode, 0, p2.stderr)
        self.assertEqual(len(self.state(out)["history"]), len(st["history"]))
        self.assertEqual(len(Path(os.path.dirname(out), "builds.txt").read_text().split()), n_builds)

    def run_and_stop(self, out, sig, after_outcomes, env):
        proc = subprocess.Popen(self.args(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        path = os.path.join(out, "bisect.json")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            try:
                with open(path) as f:
                    if len(json.load(f)["history"]) >= after_outcomes:
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        time.sleep(0.1)  # land inside a run (each takes SLEEP s)
        proc.send_signal(sig)
        o, e = proc.communicate(timeout=60)
        return proc.returncode, o, e

    def resume_case(self, name, sig, want_rc):
        out = self.fresh(name)
        env = dict(os.environ, SLEEP="0.15", SEED="11")
        rc, o, e = self.run_and_stop(out, sig, 12, env)
        self.assertEqual(rc, want_rc, e)
        before = self.state(out)  # atomic writes: always a whole document
        self.assertIsNone(before["verdict"])
        ctl = os.path.dirname(out)
        builds_before = Path(ctl, "builds.txt").read_text().split()
        env["SLEEP"] = "0"
        p = subprocess.run(self.args(out), capture_output=True, text=True, env=env, timeout=600)
        after = self.check_found(out, p)
        self.assertIn("resumed", p.stdout)
        # no finished step redone: the history before the stop is the start of the one after
        self.assertEqual(after["history"][:len(before["history"])], before["history"])
        self.assertEqual(after["sessions"], 2)
        # the build that was finished and current is not redone at resume
        builds_after = Path(ctl, "builds.txt").read_text().split()
        if before["built"]:
            self.assertNotEqual(builds_after[len(builds_before):len(builds_before) + 1], [before["built"]["commit"]])
        return o, e

    def test_resume_after_sigkill(self):
        self.resume_case("killed", signal.SIGKILL, -signal.SIGKILL)

    def test_resume_after_ctrl_c(self):
        o, e = self.resume_case("interrupted", signal.SIGINT, 130)
        self.assertIn("interrupted: state saved", o)

    def bad(self, *args, out=None, want=None):
        out = out or os.path.join(self.tmp, "never")
        a = self.args(out)
        for i in range(0, len(args), 2):
            k, v = args[i], args[i + 1]
            if k in a:
                a[a.index(k) + 1] = v
            else:
                a += [k, v]
        p = subprocess.run(a, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("fsrace bisect: "), lines)
        self.assertNotIn("Traceback", p.stderr)
        if want:
            self.assertIn(want, lines[0])
        return lines[0]

    def test_bad_inputs(self):
        self.bad("--src", self.tmp, want="is not a git work tree")
        self.bad("--src", "/nonexistent/x", want="no such directory")
        self.bad("--good", "nosuchrev", want="--good nosuchrev: unknown revision")
        self.bad("--bad", "nosuchrev", want="--bad nosuchrev: unknown revision")
        self.bad("--good", "side", want="is not an ancestor")
        self.bad("--good", "bad", want="the same commit")
        self.bad("--good", "bad", "--bad", "good", want="is not an ancestor")
        self.bad("--campaign", "/nonexistent.toml", want="--campaign")
        self.bad("--build-cmd", "{nosuch} x", want="unknown placeholder {nosuch}")
        self.bad("--test-cmd", "'unterminated", want="quot")
        self.bad("--test-cmd", "/nonexistent/prog {image}", want="not found")
        self.bad("--build-cmd", "", want="empty")
        self.bad("--confidence", "1.5", want="--confidence")
        self.bad("--max-runs", "zero", want="--max-runs")
        # an --out of another bisection is refused, not mixed
        out = self.fresh("other")
        os.makedirs(out)
        Path(out, "bisect.json").write_text(json.dumps({"version": 1, "inputs": {"good": "x"}}))
        self.bad(out=out, want="holds a bisection of other inputs")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "never")))


if __name__ == "__main__":
    unittest.main()
