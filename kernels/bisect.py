"""fsrace bisect: a flaky-aware bisection that names the culprit commit with a stated confidence.

    python3 kernels/bisect.py --src DIR --good REV --bad REV --campaign FILE [--class CLASS]
        [--confidence 0.99] [--max-runs N] [--max-hours H] [--out DIR] [--build-cmd T] [--test-cmd T]
    (normally through `fsrace bisect ...`; docs/bisect.md)

Two halves in one file (stdlib only):

* The DECISION part (pure: no I/O, no clock, no randomness; a function of the history of outcomes), in the
  style of syzkaller's pkg/bisect: the candidates are the first-parent commits good..bad, index 1..N
  (N = bad), index 0 = good.  Hypothesis h in 0..N = "commit h is the first bad one" (h = 0: the bug is
  already in good, i.e. not a regression of this range).  Commit i is bad iff h <= i.  A run at a bad
  commit detects the bug with probability p (false negatives), a run at a good commit never does (no false
  positives: a finding of another class, a build / boot / infra failure is a *skip*, never "bad").
  p is unknown and shared by all bad commits; it is integrated out exactly with a Beta(1, 1) prior, so the
  likelihood of h is B(1 + D_h, 1 + F_h) / B(1, 1) (D_h / F_h = detections / clean runs at commits >= h),
  and 0 if some commit < h had a detection.  The posterior is exact for this model.
  Next step: (commit, runs) maximising expected information gain about h per unit of cost (a build costs
  `build_cost` runs unless the commit is the one built now); runs at the bad end first, until p has an
  estimate (>= 2 detections, or 1 in >= 10 runs), then `confirm_good_runs` runs at good.  Stop when the
  largest posterior reaches the confidence, or the budget (runs, hours) ends, or no step can tell more.
* The DRIVER part (git, build and test commands, bisect.json / bisect.log / git-bisect.log, resume).
"""
import os
import sys

if __name__ == "__main__":  # this file is named like the stdlib's bisect module: keep its folder off sys.path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _here]

import argparse  # noqa: E402
import fcntl  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import string  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from bisect import bisect_left  # noqa: E402  (the stdlib's, see above)
from dataclasses import dataclass, field  # noqa: E402

# ======================================================================================================
# Decision (pure)
# ======================================================================================================

DETECTED, CLEAN, SKIP, BUILD_FAILED = "detected", "clean", "skip", "build-failed"
OUTCOMES = (DETECTED, CLEAN, SKIP, BUILD_FAILED)


@dataclass
class Config:
    confidence: float = 0.99
    max_runs: int | None = 300        # test runs, skips included (a build failure is not a run)
    max_hours: float | None = None
    alpha: float = 1.0                # prior on p: p = 1 (a deterministic bug) with weight det_prior, else
    beta: float = 1.0                 # Beta(alpha, beta); one miss at a bad commit rules p = 1 out
    det_prior: float = 0.0            # off: with it, flaky bugs (p 0.5-0.9) that hit 6 times in a row at bad were named wrong 4 % of the time
    build_cost: float = 3.0           # a build, in units of one test run (the driver measures it)
    max_batch: int = 20               # most runs planned at once at one commit
    bad_min_detections: int = 2       # p estimate at the bad end: this many detections ...
    bad_min_runs_one: int = 10        # ... or one detection in this many runs
    bad_det_streak: int = 6           # with no miss at bad yet: this many detections before the search
    confirm_good_runs: int = 1        # runs at good before bisecting (0: the model's h = 0 only) ...
    confirm_good_max: int = 5         # ... and more while P(good already bad) > (1 - confidence) / 2, up to this
    skip_limit: int = 4               # a commit whose first this many runs all skipped is untestable
    min_gain: float = 1e-3            # bits: a step expected to tell less ends the bisection
    good_bad_prior: float | None = None  # prior of h = 0; None: as one more candidate (1 / (N + 1))
    robust_quantile: float | None = 0.05  # a verdict must also hold with p fixed at this lower quantile of its
                                          # posterior (None: the integrated posterior alone; see docs/bisect.md)
    robust_search: bool = True            # ... and the search steers by that posterior from the start


@dataclass
class Stats:
    runs: list = field(default_factory=list)        # clean + detected runs per commit
    det: list = field(default_factory=list)
    skips: list = field(default_factory=list)
    build_failed: list = field(default_factory=list)
    total_runs: int = 0                              # every test run, skips included


def stats_of(n: int, history) -> Stats:
    """history: iterable of (commit index 0..n, outcome) in order."""
    s = Stats([0] * (n + 1), [0] * (n + 1), [0] * (n + 1), [False] * (n + 1), 0)
    for i, o in history:
        if not 0 <= i <= n or o not in OUTCOMES:
            raise ValueError(f"bad history entry ({i}, {o!r})")
        if o == BUILD_FAILED:
            s.build_failed[i] = True
            continue
        s.total_runs += 1
        if o == SKIP:
            s.skips[i] += 1
        else:
            s.runs[i] += 1
            s.det[i] += o == DETECTED
    return s


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def posterior(n: int, history, cfg: Config | None = None, stats: Stats | None = None) -> list:
    """P(h) for h = 0..n given the history (exact under the model, p integrated out)."""
    cfg = cfg or Config()
    s = stats or stats_of(n, history)
    g0 = cfg.good_bad_prior if cfg.good_bad_prior is not None else 1.0 / (n + 1)
    lp0, lpc = math.log(g0), math.log((1.0 - g0) / n)
    first_det = next((i for i in range(n + 1) if s.det[i]), n + 1)  # h <= first detected commit
    logs = [-math.inf] * (n + 1)
    D = F = 0
    suffix = [(0, 0)] * (n + 1)
    for i in range(n, -1, -1):
        D += s.det[i]
        F += s.runs[i] - s.det[i]
        suffix[i] = (D, F)
    base = _lbeta(cfg.alpha, cfg.beta)
    memo = {}  # (D, F) is constant between tested commits
    for h in range(min(first_det, n) + 1):
        df = suffix[h]
        v = memo.get(df)
        if v is None:
            v = _lbeta(cfg.alpha + df[0], cfg.beta + df[1]) - base
            if cfg.det_prior > 0:  # the mixture: p = 1 with weight det_prior, else Beta(alpha, beta)
                v = math.log((cfg.det_prior if df[1] == 0 else 0.0) + (1 - cfg.det_prior) * math.exp(v))
            memo[df] = v
        logs[h] = (lp0 if h == 0 else lpc) + v
    m = max(logs)
    w = [math.exp(x - m) if x > -math.inf else 0.0 for x in logs]
    t = sum(w)
    return [x / t for x in w]


def posterior_at(n: int, history, p: float, cfg: Config | None = None, stats: Stats | None = None) -> list:
    """P(h) for h = 0..n with p known (= p): the detections are the same for every h they allow (all at
    commits >= h), so only the clean runs at commits >= h tell hypotheses apart, each by (1 - p)."""
    cfg = cfg or Config()
    s = stats or stats_of(n, history)
    g0 = cfg.good_bad_prior if cfg.good_bad_prior is not None else 1.0 / (n + 1)
    lp0, lpc = math.log(g0), math.log((1.0 - g0) / n)
    first_det = next((i for i in range(n + 1) if s.det[i]), n + 1)
    lq = math.log1p(-p) if p < 1.0 else -math.inf
    logs = [-math.inf] * (n + 1)
    F = 0
    for i in range(n, -1, -1):
        F += s.runs[i] - s.det[i]
        if i <= min(first_det, n):
            logs[i] = (lp0 if i == 0 else lpc) + (F * lq if F else 0.0)
    m = max(logs)
    w = [math.exp(x - m) if x > -math.inf else 0.0 for x in logs]
    t = sum(w)
    return [x / t for x in w]


_BQ_K = 4000
_BQ_X = [(i + 0.5) / _BQ_K for i in range(_BQ_K)]
_BQ_LX = [math.log(x) for x in _BQ_X]
_BQ_L1X = [math.log1p(-x) for x in _BQ_X]


@functools.lru_cache(maxsize=65536)
def beta_quantile(a: float, b: float, q: float) -> float:
    """The q-quantile of Beta(a, b) (a, b >= 1 here), by the CDF integrated on a fine grid (the grid's logs
    computed once; a bisection asks for the same (a, b) at step after step, and simulations for the same
    ones again: cached, it was 78 % of the decision's time)."""
    lb = _lbeta(a, b)
    dens = [math.exp((a - 1) * lx + (b - 1) * l1x - lb) for lx, l1x in zip(_BQ_LX, _BQ_L1X)]
    t = sum(dens)
    c, goal = 0.0, q * t
    for x, d in zip(_BQ_X, dens):
        c += d
        if c >= goal:
            return x - 0.5 / _BQ_K
    return 1.0


def entropy_bits(post) -> float:
    return -sum(x * math.log2(x) for x in post if x > 0)


def mass_moved(before, after) -> float:
    """Total variation distance between two posteriors (how much probability the step moved)."""
    return 0.5 * sum(abs(a - b) for a, b in zip(before, after))


def _h2(x: float) -> float:
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return -(x * math.log2(x) + (1 - x) * math.log2(1 - x))


def info_gain(pb: float, miss: float) -> float:
    """Expected bits about h from runs at a commit that is bad with probability pb, when every one of the
    runs misses a present bug with probability `miss` (= E[(1-p)^r]); a detection is conclusive."""
    p0 = 1.0 - pb + pb * miss
    if p0 <= 0.0:
        return _h2(pb)
    return _h2(pb) - p0 * _h2(pb * miss / p0)


@dataclass
class Step:
    commit: int          # index 0..n
    runs: int            # runs planned at it (the caller may ask again after each run)
    phase: str           # "bad-end" | "confirm-good" | "search" | "p-estimate" (one more run at bad)
    gain: float = 0.0    # expected bits of the planned runs


@dataclass
class Verdict:
    kind: str            # "culprit" | "inconclusive" | "good-is-bad" | "not-reproduced" | "untestable-bad"
    culprit: int | None  # index (for "culprit" / "good-is-bad": 0)
    probability: float   # of the culprit (or of the top suspect)
    suspects: list       # [(index, probability), ...] best first, covering the confidence (at most 10)
    reason: str
    conclusive: bool


def p_estimate(n: int, s: Stats, post, cfg: Config):
    """Posterior of p at the bad side of the most likely hypothesis: (P(p = 1), a, b of the Beta part)."""
    h = max(range(n + 1), key=lambda i: post[i])
    D = sum(s.det[h:])
    F = sum(s.runs[h:]) - D
    a, b = cfg.alpha + D, cfg.beta + F
    wd = 0.0
    if cfg.det_prior > 0 and F == 0:
        lb = math.exp(_lbeta(a, b) - _lbeta(cfg.alpha, cfg.beta))
        wd = cfg.det_prior / (cfg.det_prior + (1 - cfg.det_prior) * lb)
    return wd, a, b


def _suspects(post, cover: float, most: int = 10):
    order = sorted(range(len(post)), key=lambda i: -post[i])
    out, c = [], 0.0
    for i in order:
        if post[i] <= 0 or len(out) == most:
            break
        out.append((i, post[i]))
        c += post[i]
        if c >= cover:
            break
    return out


def verdict_of(n: int, post, s: Stats, cfg: Config, why: str) -> Verdict:
    sus = _suspects(post, cfg.confidence)
    top, pt = sus[0]
    if pt >= cfg.confidence:
        if top == 0:
            return Verdict("good-is-bad", 0, pt, sus, "the good commit already has the bug (detected there or "
                           "every later commit tested reproduces): not a regression of good..bad", False)
        return Verdict("culprit", top, pt, sus, why, True)
    return Verdict("inconclusive", None, pt, sus, why, False)


def _robust(n: int, history, s: Stats, post, cfg: Config):
    """(the posterior a verdict is judged by, the p it fixes or None): once the integrated posterior reaches
    the confidence, the posterior with p at its robust_quantile (at the most likely hypothesis' bad side)."""
    if not cfg.robust_quantile or (max(post) < cfg.confidence and not cfg.robust_search):
        return post, None
    _, a, b = p_estimate(n, s, post, cfg)
    p_lo = beta_quantile(a, b, cfg.robust_quantile)
    return posterior_at(n, history, p_lo, cfg, s), p_lo


def decide(n: int, history, cfg: Config | None = None, elapsed_s: float = 0.0, current: int | None = None):
    """The next Step, or the Verdict.  n = number of candidates (index n is bad, 0 is good); history =
    [(index, outcome)]; elapsed_s = time spent so far; current = the commit built now (no build cost)."""
    cfg = cfg or Config()
    if n < 1:
        raise ValueError("no candidate commits")
    s = stats_of(n, history)
    post = posterior(n, history, cfg, s)
    budget_over = ((cfg.max_runs is not None and s.total_runs >= cfg.max_runs) or
                   (cfg.max_hours is not None and elapsed_s >= cfg.max_hours * 3600))
    spent = f"budget spent ({s.total_runs} runs, {elapsed_s / 3600:.2f} h)"
    # 1. the bad end: it must build, reproduce, and give p an estimate
    if s.build_failed[n]:
        return Verdict("untestable-bad", None, 0.0, [], "the bad commit does not build: pick a bad commit that builds", False)
    if s.det[n] == 0 and s.skips[n] >= 10 and s.skips[n] > 2 * s.runs[n]:
        return Verdict("untestable-bad", None, 0.0, [], f"the bad commit could not be tested ({s.skips[n]} skipped runs)", False)
    need_bad = s.det[n] < cfg.bad_min_detections and not (s.det[n] >= 1 and s.runs[n] >= cfg.bad_min_runs_one)
    # p = 1 (the deterministic part of the prior) makes a clean run conclusive: trust it only after a run of
    # detections that a flaky bug would rarely give (6 in a row: 6e-5 at p = 0.2, 0.016 at p = 0.5)
    need_bad = need_bad or (cfg.det_prior > 0 and s.runs[n] == s.det[n] and s.det[n] < cfg.bad_det_streak)
    if need_bad:
        if budget_over:
            if s.det[n] == 0:
                return Verdict("not-reproduced", None, 0.0, [], f"the bad commit never reproduced in {s.runs[n]} runs "
                               f"({spent}): raise --max-runs, lengthen the campaign or check --class", False)
            return verdict_of(n, _robust(n, history, s, post, cfg)[0], s, cfg, spent)
        return Step(n, 1, "bad-end")
    # 2. good must not reproduce (one detection there and it is bad: h = 0)
    if s.det[0]:
        return verdict_of(n, post, s, cfg, "the good commit reproduced the bug")
    if (not s.build_failed[0] and s.skips[0] < cfg.skip_limit and not budget_over and all(h == 0 for h, _ in history
            if h != n) and (s.runs[0] < cfg.confirm_good_runs or
                            (s.runs[0] < cfg.confirm_good_max and post[0] > (1 - cfg.confidence) / 2))):
        return Step(0, max(1, cfg.confirm_good_runs - s.runs[0]), "confirm-good")
    # 3. done? The integrated posterior first, then the same with p fixed at a low quantile of its posterior
    # (robust_quantile): a flaky bug that hit a few times in a row at the bad end makes p look high and clean
    # runs look more conclusive than they are (at p = 0.2 the integrated posterior alone named a wrong commit
    # with 0.99 in 5 % of simulated bisections). Until both agree, the search goes on under the pessimistic one.
    integrated = post
    post, fixed_p = _robust(n, history, s, post, cfg)
    if max(post) >= cfg.confidence and max(integrated) >= cfg.confidence:
        return verdict_of(n, post, s, cfg, f"posterior reached {cfg.confidence}" +
                          (f" (also with p at its {cfg.robust_quantile:g} quantile, {fixed_p:.3f})" if fixed_p else ""))
    if budget_over:
        return verdict_of(n, post, s, cfg, spent)
    # 4. the next (commit, runs) by expected information gain per cost
    elig = [i for i in range(n) if not s.build_failed[i] and not (s.skips[i] >= cfg.skip_limit and s.runs[i] == 0)]
    cum, c = [], 0.0
    for x in post:
        c += x
        cum.append(c)  # cum[i] = P(commit i is bad) = P(h <= i)
    pel = [cum[i] for i in elig]
    wd, a, b = p_estimate(n, s, post, cfg)
    lb = _lbeta(a, b)
    best = None
    for r in range(1, cfg.max_batch + 1):
        miss = (1 - fixed_p) ** r if fixed_p is not None else (1 - wd) * math.exp(_lbeta(a, b + r) - lb)  # E[(1-p)^r]
        # info_gain is concave in pb (mutual information in the input distribution), cum is monotone:
        # the best commit is next to the continuous optimum pb*
        lo, hi = 0.0, 1.0
        for _ in range(40):
            m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            if info_gain(m1, miss) < info_gain(m2, miss):
                lo = m1
            else:
                hi = m2
        j = bisect_left(pel, (lo + hi) / 2)
        cands = {elig[k] for k in (j - 1, j) if 0 <= k < len(elig)}
        if current is not None and current in elig:
            cands.add(current)
        for i in cands:
            g = info_gain(cum[i], miss) * (s.runs[i] + 1) / (s.runs[i] + s.skips[i] + 1)  # x P(the runs are not skipped)
            score = g / (r + (0.0 if i == current else cfg.build_cost))
            key = (score, -abs(cum[i] - 0.5), -i)
            if best is None or key > best[0]:
                best = (key, i, r, g)
    # one more run at the bad end or at the commit built now, valued exactly (both outcomes): at a commit
    # surely bad it still tells about h through p, which the estimate above leaves out
    h0 = entropy_bits(post)
    for i in sorted({n} | ({current} if current is not None and current in elig else set())):
        if fixed_p is not None:  # p_lo is estimated again from the longer history: a run at the bad end raises it
            pd = cum[i] * fixed_p

            def after(o, i=i):
                h2 = list(history) + [(i, o)]
                s2 = stats_of(n, h2)
                return _robust(n, h2, s2, posterior(n, h2, cfg, s2), cfg)[0]
        else:
            pd = cum[i] * (wd + (1 - wd) * a / (a + b))
            after = lambda o: posterior(n, list(history) + [(i, o)], cfg)  # noqa: E731
        gi = h0 - (pd * entropy_bits(after(DETECTED)) + (1 - pd) * entropy_bits(after(CLEAN)))
        gi *= (s.runs[i] + 1) / (s.runs[i] + s.skips[i] + 1)
        si = gi / (1 + (0.0 if current == i else cfg.build_cost))
        if gi > cfg.min_gain and (best is None or si > best[0][0]):
            best = ((si,), i, 1, gi)
    if best is None or best[3] < cfg.min_gain:
        return verdict_of(n, post, s, cfg, "no commit left whose test can tell more (untestable commits around the suspects)")
    _, i, r, g = best
    return Step(i, r, "search", g)


# ------------------------------------------------------------------------------------------------------
# Simulation (used by the unit tests and bench/bisect_sim.py; deterministic given the seed)
# ------------------------------------------------------------------------------------------------------

def simulate(n: int, culprit: int, p: float, seed: int, skip_rate: float = 0.0, build_fails=(),
             cfg: Config | None = None) -> dict:
    """One simulated bisection: commit i is bad iff i >= culprit; a run skips with probability skip_rate,
    else detects with probability p at a bad commit; commits in build_fails never build."""
    cfg = cfg or Config()
    rng = random.Random(seed)
    hist, builds, current = [], 0, None
    for _ in range(100000):
        d = decide(n, hist, cfg, 0.0, current)
        if isinstance(d, Verdict):
            return {"verdict": d, "correct": d.kind == "culprit" and d.culprit == culprit,
                    "runs": stats_of(n, hist).total_runs, "builds": builds}
        if d.commit != current:
            builds += 1
            current = d.commit
            if d.commit in build_fails:
                hist.append((d.commit, BUILD_FAILED))
                current = None
                continue
        if rng.random() < skip_rate:
            hist.append((d.commit, SKIP))
        elif d.commit >= culprit and rng.random() < p:
            hist.append((d.commit, DETECTED))
        else:
            hist.append((d.commit, CLEAN))
    raise RuntimeError("simulation did not end")


def simulate_naive(n: int, culprit: int, p: float, seed: int, skip_rate: float = 0.0, build_fails=()) -> dict:
    """`git bisect run` with a test run once per step (what ktest does): a clean run is "good"."""
    rng = random.Random(seed)
    lo, hi, runs, builds = 0, n, 0, 0
    skipped = set()
    while hi - lo > 1:
        mids = [i for i in range(lo + 1, hi) if i not in skipped]
        if not mids:
            break  # git: "only skipped commits left to test"
        mid = min(mids, key=lambda i: (abs(i - (lo + hi) / 2), i))
        builds += 1
        if mid in build_fails:
            skipped.add(mid)
            continue
        runs += 1
        if rng.random() < skip_rate:
            skipped.add(mid)  # git bisect skip: that commit is not tried again
            continue
        if mid >= culprit and rng.random() < p:
            hi = mid
        else:
            lo = mid
    return {"culprit": hi, "correct": hi == culprit and hi - lo == 1, "runs": runs, "builds": builds}


# ======================================================================================================
# Driver (git, commands, state files)
# ======================================================================================================

class BisectError(Exception):
    """One line: the thing and what to do. Exit 2."""


class Interrupted(Exception):
    pass


STATE_VERSION = 1
BUILD_FIELDS = {"src", "worktree", "rev", "out", "fsrace"}
TEST_FIELDS = BUILD_FIELDS | {"image", "campaign", "class", "class_opt"}


def _git(args, cwd, check=True):
    p = subprocess.run(["git", "-C", cwd] + args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise BisectError(f"git {' '.join(args)} failed in {cwd}: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return p


def write_atomic(path: str, text: str):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def check_template(name: str, tmpl: str, allowed: set) -> list:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(tmpl) if f is not None]
    except ValueError as e:
        raise BisectError(f"{name} {tmpl!r}: {e}: write placeholders as {{name}} and a literal brace as {{{{ or }}}}") from None
    for f in fields:
        if f not in allowed:
            raise BisectError(f"{name} {tmpl!r}: unknown placeholder {{{f}}}: use only "
                              + ", ".join("{" + a + "}" for a in sorted(allowed)))
    try:
        argv = shlex.split(tmpl)
    except ValueError as e:
        raise BisectError(f"{name} {tmpl!r}: {e}: fix the quoting") from None
    if not argv:
        raise BisectError(f"{name} is empty: give a command")
    return fields


def expand(tmpl: str, values: dict) -> list:
    """argv of a template: each word formatted; the word {class_opt} becomes its own words (none without --class)."""
    out = []
    for w in shlex.split(tmpl):
        if w == "{class_opt}":
            out += shlex.split(values.get("class_opt", ""))
        else:
            out.append(w.format(**values))
    return out


class Driver:
    def __init__(self, a):
        self.a = a
        self.log_f = None
        self.t_start = time.monotonic()

    # ---- inputs -----------------------------------------------------------------------------------
    def validate(self):
        a = self.a
        if not (0.5 < a.confidence < 1.0):
            raise BisectError(f"--confidence {a.confidence}: give a probability between 0.5 and 1 (e.g. 0.99)")
        if a.max_runs is not None and a.max_runs < 1:
            raise BisectError(f"--max-runs {a.max_runs}: give at least 1")
        if a.max_hours is not None and a.max_hours <= 0:
            raise BisectError(f"--max-hours {a.max_hours}: give a positive number of hours")
        src = os.path.abspath(a.src)
        if not os.path.isdir(src):
            raise BisectError(f"--src {a.src}: no such directory: pass the kernel's git work tree")
        p = _git(["rev-parse", "--show-toplevel"], src, check=False)
        if p.returncode != 0:
            raise BisectError(f"--src {a.src} is not a git work tree: pass a git checkout (git clone / git worktree add)")
        self.src = p.stdout.strip()
        shas = {}
        for opt, rev in (("--good", a.good), ("--bad", a.bad)):
            q = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"], self.src, check=False)
            if q.returncode != 0 or not q.stdout.strip():
                raise BisectError(f"{opt} {rev}: unknown revision in {self.src}: pass a commit, tag or branch of that tree (git log)")
            shas[opt] = q.stdout.strip()
        self.good, self.bad = shas["--good"], shas["--bad"]
        if self.good == self.bad:
            raise BisectError(f"--good {a.good} and --bad {a.bad} are the same commit: pass a good commit older than the bad one")
        if _git(["merge-base", "--is-ancestor", self.good, self.bad], self.src, check=False).returncode != 0:
            raise BisectError(f"--good {a.good} is not an ancestor of --bad {a.bad}: pass a good commit the bad one descends from")
        revs = _git(["rev-list", "--first-parent", "--reverse", f"{self.good}..{self.bad}"], self.src).stdout.split()
        if not revs or revs[-1] != self.bad:
            raise BisectError(f"git rev-list --first-parent {a.good}..{a.bad} is empty: pass a good commit older than the bad one")
        self.cands = [self.good] + revs  # index 0 = good, n = bad
        self.n = len(revs)
        self.campaign = os.path.abspath(a.campaign)
        if not os.path.isfile(self.campaign):
            raise BisectError(f"--campaign {a.campaign}: no such file: pass a campaign TOML (campaigns/*.toml)")
        check_template("--build-cmd", a.build_cmd, BUILD_FIELDS)
        tf = check_template("--test-cmd", a.test_cmd, TEST_FIELDS)
        self.test_needs_image = "image" in tf
        for name, tmpl in (("--build-cmd", a.build_cmd), ("--test-cmd", a.test_cmd)):
            prog = shlex.split(tmpl)[0].format(**self._values(0, image="x"))
            if not (shutil.which(prog) or (os.sep in prog and os.access(prog, os.X_OK))):
                raise BisectError(f"{name} {tmpl!r}: program {prog!r} not found or not executable: fix the command")
        self.out = os.path.abspath(a.out or os.path.join(os.environ.get("FSRACE_TOP", "."), "results", "bisect",
                                                         f"{self.good[:12]}-{self.bad[:12]}"))
        self.tree = os.path.join(self.out, "tree")

    def _values(self, i, image=""):
        return {"src": self.src, "worktree": getattr(self, "tree", ""), "rev": self.cands[i], "out": getattr(self, "out", ""),
                "fsrace": self.a.fsrace, "image": image, "campaign": getattr(self, "campaign", ""), "class": self.a.cls or "",
                "class_opt": f"--bisect-class {shlex.quote(self.a.cls)}" if self.a.cls else ""}

    def inputs(self):
        return {"src": self.src, "good": self.good, "bad": self.bad, "campaign": self.campaign, "class": self.a.cls or "",
                "build_cmd": self.a.build_cmd, "test_cmd": self.a.test_cmd, "candidates": self.cands}

    def cfg(self):
        c = Config(confidence=self.a.confidence, max_runs=self.a.max_runs, max_hours=self.a.max_hours)
        bs = [b["build_s"] for b in self.state["builds"] if b.get("ok")]
        ts = [r["test_s"] for st in self.state["steps"] for r in st["runs"]]
        if bs and ts:
            c.build_cost = min(30.0, max(0.5, (sum(bs) / len(bs)) / max(1e-3, sum(ts) / len(ts))))
        return c

    # ---- state ------------------------------------------------------------------------------------
    def open_out(self):
        try:
            os.makedirs(os.path.join(self.out, "logs"), exist_ok=True)
        except OSError as e:
            raise BisectError(f"--out {self.out}: {e.strerror}: pass a writable directory") from None
        self.lock_fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BisectError(f"another fsrace bisect is running in {self.out}: wait for it or pass another --out") from None
        path = os.path.join(self.out, "bisect.json")
        self.resumed = os.path.exists(path)
        if self.resumed:
            try:
                with open(path) as f:
                    st = json.load(f)
            except (OSError, ValueError) as e:
                raise BisectError(f"{path} is unreadable ({e}): move it away to start over") from None
            if st.get("version") != STATE_VERSION or st.get("inputs") != self.inputs():
                diff = [k for k in self.inputs() if st.get("inputs", {}).get(k) != self.inputs()[k]]
                raise BisectError(f"{self.out} holds a bisection of other inputs ({', '.join(diff) or 'version'} differ): "
                                  "pass another --out, or the same arguments to resume it")
            self.state = st
        else:
            self.state = {"version": STATE_VERSION, "inputs": self.inputs(), "history": [], "steps": [], "builds": [],
                          "built": None, "elapsed_s": 0.0, "sessions": 0, "verdict": None}
        self.state["sessions"] += 1
        self.elapsed0 = self.state["elapsed_s"]
        self.log_f = open(os.path.join(self.out, "bisect.log"), "a")

    def elapsed(self):
        return self.elapsed0 + time.monotonic() - self.t_start

    def save(self):
        self.state["elapsed_s"] = round(self.elapsed(), 3)
        write_atomic(os.path.join(self.out, "bisect.json"), json.dumps(self.state, indent=1) + "\n")
        write_atomic(os.path.join(self.out, "git-bisect.log"), self.git_log())

    def log(self, msg):
        line = time.strftime("%H:%M:%S ") + msg
        print(line, flush=True)
        if self.log_f:
            self.log_f.write(line + "\n")
            self.log_f.flush()

    def subject(self, i):
        if not hasattr(self, "_subjects"):
            out = _git(["log", "--format=%H %s", "--no-walk=unsorted"] + self.cands, self.src, check=False).stdout
            self._subjects = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())
        return self._subjects.get(self.cands[i], "")

    def name(self, i):
        tag = " (good)" if i == 0 else " (bad)" if i == self.n else ""
        return f"{self.cands[i][:12]}{tag}"

    def git_log(self):
        """git's own bisect log (git bisect replay can read it): bad = a detection there, good = a commit with clean
        runs whose P(good) reached the confidence, skip = a build failure or only skipped runs."""
        n, hist = self.n, [tuple(h) for h in self.state["history"]]
        s = stats_of(n, hist)
        post = posterior(n, hist, Config(), s)
        cum = [sum(post[:i + 1]) for i in range(n + 1)]
        lines = [f"git bisect start '{self.bad}' '{self.good}'", f"# bad: [{self.bad}] {self.subject(n)}",
                 f"git bisect bad {self.bad}", f"# good: [{self.good}] {self.subject(0)}", f"git bisect good {self.good}"]
        seen = []
        for i, _ in hist:
            if i not in seen and i not in (0, n):
                seen.append(i)
        for i in seen:
            c = self.cands[i]
            what = f"{s.det[i]}/{s.runs[i]} runs detected, {s.skips[i]} skipped, P(bad)={cum[i]:.3f}"
            if s.det[i]:
                lines += [f"# bad: [{c}] {self.subject(i)} ({what})", f"git bisect bad {c}"]
            elif s.build_failed[i] or (s.runs[i] == 0 and s.skips[i]):
                lines += [f"# skip: [{c}] {self.subject(i)} ({'build failed' if s.build_failed[i] else what})", f"git bisect skip {c}"]
            elif 1 - cum[i] >= self.a.confidence:
                lines += [f"# good: [{c}] {self.subject(i)} ({what})", f"git bisect good {c}"]
            else:
                lines.append(f"# unsure: [{c}] {self.subject(i)} ({what}): not marked")
        v = self.state.get("verdict")
        if v and v.get("kind") == "culprit":
            lines.append(f"# first bad commit: [{v['commit']}] {v['subject']} (posterior {v['probability']:.4f})")
        return "\n".join(lines) + "\n"

    # ---- commands ---------------------------------------------------------------------------------
    def run_cmd(self, argv, stdout_path, stderr_path):
        with open(stdout_path, "w") as o, open(stderr_path, "w") as e:
            try:
                proc = subprocess.Popen(argv, cwd=self.tree, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
            except OSError as ex:
                e.write(f"cannot run {argv[0]}: {ex.strerror}\n")
                return 127
            try:
                return proc.wait()
            except BaseException:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise

    def ensure_tree(self):
        if os.path.isdir(self.tree) and _git(["rev-parse", "--git-dir"], self.tree, check=False).returncode == 0:
            return
        if os.path.exists(self.tree):
            shutil.rmtree(self.tree)
        _git(["worktree", "prune"], self.src, check=False)
        _git(["worktree", "add", "--detach", "--force", self.tree, self.bad], self.src)

    def build(self, i):
        """Checks commit i out in the one build work tree and runs the build command; returns the image or None."""
        sha = self.cands[i]
        b = self.state["built"]
        if b and b["commit"] == sha and (not self.test_needs_image or os.path.exists(b["image"])):
            return b["image"]
        self.ensure_tree()
        self.state["built"] = None  # saved before the tree changes: a kill mid-build never reuses a half-built tree
        self.save()
        _git(["checkout", "--detach", "--force", "--quiet", sha], self.tree)
        argv = expand(self.a.build_cmd, self._values(i))
        base = os.path.join(self.out, "logs", f"build-{sha[:12]}")
        self.log(f"build {self.name(i)} {self.subject(i)[:60]}")
        t0 = time.monotonic()
        rc = self.run_cmd(argv, base + ".out", base + ".log")
        dt = time.monotonic() - t0
        if rc in (130, -signal.SIGINT, -signal.SIGTERM):
            raise Interrupted()
        with open(base + ".out") as f:
            lines = [x.strip() for x in f.read().splitlines() if x.strip()]
        image = lines[-1] if lines else ""
        ok, why = rc == 0, f"exit status {rc}"
        if ok and self.test_needs_image and not os.path.exists(image):
            ok, why = False, f"printed no existing image path (last line {image!r})"
        rec = {"commit": sha, "index": i, "build_s": round(dt, 3), "ok": ok, "image": image if ok else "",
               "log": base + ".log", "rc": rc}
        self.state["builds"].append(rec)
        if not ok:
            self.log(f"build {self.name(i)} failed ({why}, {dt:.1f} s; {base}.log): skipped")
            self.record(i, BUILD_FAILED, {"build_s": round(dt, 3)})
            return None
        self.log(f"build {self.name(i)} ok in {dt:.1f} s{': ' + image if image else ''}")
        self.state["built"] = {"commit": sha, "image": image}
        self.save()
        return image

    def record(self, i, outcome, run):
        """Appends one outcome to the history and to the current step (a new step when the commit changes)."""
        st = self.state["steps"]
        if not st or st[-1]["commit"] != self.cands[i] or st[-1].get("closed"):
            st.append({"commit": self.cands[i], "index": i, "subject": self.subject(i), "history_start": len(self.state["history"]),
                       "build_s": None, "runs": [], "detections": 0, "clean": 0, "skips": 0, "build_failed": False})
        step = st[-1]
        if outcome == BUILD_FAILED:
            step["build_failed"] = True
            step["build_s"] = run.get("build_s")
        else:
            step["runs"].append(run)
            step["detections" if outcome == DETECTED else "clean" if outcome == CLEAN else "skips"] += 1
        self.state["history"].append([i, outcome])
        n, hist = self.n, [tuple(h) for h in self.state["history"]]
        before = posterior(n, hist[:step["history_start"]], self.cfg())
        after = posterior(n, hist, self.cfg())
        step["mass_moved"] = round(mass_moved(before, after), 6)
        top = max(range(n + 1), key=lambda k: after[k])
        step["after"] = {"top": self.cands[top], "top_p": round(after[top], 6), "entropy_bits": round(entropy_bits(after), 4)}
        self.save()
        return after

    def test(self, i, image, step_no):
        sha = self.cands[i]
        argv = expand(self.a.test_cmd, self._values(i, image))
        k = len(self.state["history"])
        base = os.path.join(self.out, "logs", f"run{k:04d}-{sha[:12]}")
        t0 = time.monotonic()
        rc = self.run_cmd(argv, base + ".out", base + ".log")
        dt = time.monotonic() - t0
        if rc in (130, -signal.SIGINT, -signal.SIGTERM):
            raise Interrupted()
        outcome = {0: CLEAN, 1: DETECTED}.get(rc, SKIP)
        if rc not in (0, 1, 125) and not any(o in (CLEAN, DETECTED) for _, o in self.state["history"]):
            raise BisectError(f"the test command exited with status {rc} before any result ({base}.log): fix --test-cmd "
                              "or the campaign (it must exit 0 clean, 1 bug, 125 skip)")
        after = self.record(i, outcome, {"rc": rc, "outcome": outcome, "test_s": round(dt, 3), "log": base + ".log"})
        if self.state["steps"][-1]["build_s"] is None and self.state["builds"] and self.state["builds"][-1]["commit"] == sha:
            self.state["steps"][-1]["build_s"] = self.state["builds"][-1]["build_s"]
        top = max(range(self.n + 1), key=lambda q: after[q])
        what = outcome + ("" if rc in (0, 1, 125) else f" (exit status {rc}: counted as a skip)")
        self.log(f"run at {self.name(i)}: {what} in {dt:.1f} s; top suspect {self.name(top)} P={after[top]:.4f}, "
                 f"{entropy_bits(after):.2f} bits left")

    # ---- the loop ---------------------------------------------------------------------------------
    def verdict_record(self, v: Verdict):
        rec = {"kind": v.kind, "conclusive": v.conclusive, "reason": v.reason, "probability": round(v.probability, 6),
               "suspects": [{"commit": self.cands[i], "index": i, "subject": self.subject(i), "probability": round(p, 6)}
                            for i, p in v.suspects],
               "runs": stats_of(self.n, [tuple(h) for h in self.state["history"]]).total_runs,
               "builds": len(self.state["builds"]), "hours": round(self.elapsed() / 3600, 4)}
        if v.culprit is not None:
            rec.update(commit=self.cands[v.culprit], subject=self.subject(v.culprit))
        return rec

    def verdict_text(self, v: Verdict):
        if v.kind == "culprit":
            return f"first bad commit: {self.cands[v.culprit]} {self.subject(v.culprit)} (posterior {v.probability:.4f})"
        if v.kind == "good-is-bad":
            return f"not a regression of this range: {v.reason} (P {v.probability:.4f})"
        if v.kind in ("not-reproduced", "untestable-bad"):
            return f"no verdict: {v.reason}"
        sus = ", ".join(f"{self.cands[i][:12]}{' (good: already bad)' if i == 0 else ''} {p:.3f}" for i, p in v.suspects)
        return f"inconclusive: one of {sus} ({v.reason})"

    def run(self) -> int:
        self.validate()
        self.open_out()
        cfg = self.cfg()
        if self.resumed:
            self.log(f"resumed ({len(self.state['history'])} outcomes recorded, session {self.state['sessions']})")
        else:
            self.log(f"start: {self.n} candidate commits {self.good[:12]}..{self.bad[:12]} in {self.src}; confidence "
                     f"{cfg.confidence}, budget {cfg.max_runs or 'unlimited'} runs / {cfg.max_hours or 'unlimited'} h; out {self.out}")
        self.save()
        while True:
            cfg = self.cfg()
            built = self.state["built"]
            cur = self.cands.index(built["commit"]) if built else None
            d = decide(self.n, [tuple(h) for h in self.state["history"]], cfg, self.elapsed(), cur)
            if isinstance(d, Verdict):
                self.state["verdict"] = self.verdict_record(d)
                self.save()
                self.log(self.verdict_text(d))
                self.log(f"{self.state['verdict']['runs']} runs, {self.state['verdict']['builds']} builds, "
                         f"{self.elapsed() / 3600:.2f} h; bisect.json, bisect.log, git-bisect.log in {self.out}")
                return 0 if d.conclusive else 1
            self.state["verdict"] = None
            if d.commit != cur:
                self.log(f"next: {self.name(d.commit)} ({d.phase}, {d.runs} run(s) planned, expected {d.gain:.3f} bits)")
            image = self.build(d.commit)
            if image is None:
                continue
            self.test(d.commit, image, len(self.state["steps"]))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"fsrace bisect: {message} (see 'fsrace bisect --help')", file=sys.stderr)
        sys.exit(2)


def parse_args(argv):
    top = os.environ.get("FSRACE_TOP") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = _Parser(prog="fsrace bisect", description="flaky-aware bisection of a kernel regression (docs/bisect.md)")
    p.add_argument("--src", required=True, help="the kernel's git work tree")
    p.add_argument("--good", required=True)
    p.add_argument("--bad", required=True)
    p.add_argument("--campaign", required=True, help="campaign TOML that reproduces the bug at --bad")
    p.add_argument("--class", dest="cls", default="", help="only a finding of this class counts as bad")
    p.add_argument("--confidence", type=float, default=0.99)
    p.add_argument("--max-runs", type=int, default=300)
    p.add_argument("--max-hours", type=float, default=None)
    p.add_argument("--out", default="", help="state directory (default results/bisect/<good>-<bad>); the same one resumes")
    p.add_argument("--fsrace", default=os.environ.get("FSRACE_BIN") or os.path.join(top, "fsrace"))
    p.add_argument("--build-cmd", default="{fsrace} kernel build --src {worktree} --rev {rev}",
                   help="build command template; prints the image path as its last stdout line; placeholders "
                        + " ".join("{" + f + "}" for f in sorted(BUILD_FIELDS)))
    p.add_argument("--test-cmd", default="{fsrace} run {campaign} --kernel {image} --bisect-exit {class_opt}",
                   help="test command template: exit 0 clean, 1 detected, 125 skip; placeholders "
                        + " ".join("{" + f + "}" for f in sorted(TEST_FIELDS)))
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)

    def on_term(signum, frame):
        raise Interrupted()
    signal.signal(signal.SIGTERM, on_term)
    d = Driver(a)
    try:
        return d.run()
    except BisectError as e:
        print(f"fsrace bisect: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        if getattr(d, "state", None) is not None:
            try:
                d.save()
            except OSError:
                pass
            d.log(f"interrupted: state saved in {d.out}/bisect.json; rerun the same command to continue")
        else:
            print("fsrace bisect: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"fsrace bisect: {e.filename or ''}: {e.strerror}: check the path and its filesystem", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
