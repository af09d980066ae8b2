"""Unit tests of the bisect decision (kernels/bisect.py, pure part) against simulated histories.

Run from the repo root: python3 -m unittest kernels.test_bisect -v
The big sweep (more seeds, the naive strategy beside it) is bench/bisect_sim.py.
"""
import importlib.util
import math
import random
import time
import unittest
from pathlib import Path

_spec = importlib.util.spec_from_file_location("fsrace_bisect", Path(__file__).resolve().parent / "bisect.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


def culprit_of(n, seed):
    return random.Random(seed * 7919 + n).randint(1, n)


class Posterior(unittest.TestCase):
    def test_uniform_without_history(self):
        post = B.posterior(9, [])
        self.assertAlmostEqual(sum(post), 1.0)
        for x in post:
            self.assertAlmostEqual(x, 0.1)

    def test_detection_rules_out_later_culprits(self):
        # a detection at commit 4: the first bad commit is <= 4 (no false positives)
        post = B.posterior(10, [(10, B.DETECTED), (4, B.DETECTED)])
        self.assertEqual(sum(post[5:]), 0.0)
        self.assertAlmostEqual(sum(post), 1.0)

    def test_clean_runs_are_soft_evidence(self):
        # clean runs at 5 never exclude h <= 5 (false negatives), they only lower it
        hist = [(10, B.DETECTED)] * 2 + [(10, B.CLEAN)] * 2 + [(5, B.CLEAN)] * 3
        post = B.posterior(10, hist)
        self.assertGreater(sum(post[:6]), 0.0)
        self.assertLess(sum(post[:6]), 6 / 11)

    def test_skips_tell_nothing(self):
        hist = [(10, B.DETECTED), (10, B.CLEAN)]
        self.assertEqual(B.posterior(10, hist), B.posterior(10, hist + [(3, B.SKIP), (7, B.BUILD_FAILED)]))

    def test_deterministic_evidence_converges(self):
        # p = 1 seen many times at bad: one clean run at 6 almost excludes h <= 6
        hist = [(10, B.DETECTED)] * 30 + [(6, B.CLEAN), (7, B.DETECTED)]
        post = B.posterior(10, hist)
        self.assertGreater(post[7], 0.8)

    def test_bad_history_refused(self):
        with self.assertRaises(ValueError):
            B.stats_of(3, [(4, B.CLEAN)])
        with self.assertRaises(ValueError):
            B.stats_of(3, [(1, "maybe")])

    def test_mass_moved_and_entropy(self):
        self.assertAlmostEqual(B.entropy_bits([0.25] * 4), 2.0)
        self.assertAlmostEqual(B.mass_moved([0.5, 0.5], [1.0, 0.0]), 0.5)


class Decide(unittest.TestCase):
    def test_starts_at_the_bad_end_then_confirms_good(self):
        d = B.decide(8, [])
        self.assertEqual((d.commit, d.phase), (8, "bad-end"))
        d = B.decide(8, [(8, B.DETECTED), (8, B.DETECTED)])
        self.assertEqual((d.commit, d.phase), (0, "confirm-good"))
        d = B.decide(8, [(8, B.DETECTED), (8, B.DETECTED), (0, B.CLEAN)])
        self.assertEqual(d.phase, "confirm-good")  # P(good already bad) still above (1 - 0.99) / 2
        d = B.decide(8, [(8, B.DETECTED), (8, B.DETECTED)] + [(0, B.CLEAN)] * 5)
        self.assertEqual(d.phase, "search")
        self.assertTrue(1 <= d.commit < 8)

    def test_information_gain_prefers_the_middle_of_the_mass(self):
        hist = [(100, B.DETECTED)] * 20 + [(0, B.CLEAN)]
        d = B.decide(100, hist, current=100)
        self.assertTrue(30 <= d.commit <= 70, d)

    def test_detection_at_good_is_good_is_bad(self):
        v = B.decide(5, [(5, B.DETECTED), (5, B.DETECTED), (0, B.DETECTED)])
        self.assertIsInstance(v, B.Verdict)
        self.assertEqual(v.kind, "good-is-bad")
        self.assertFalse(v.conclusive)

    def test_bad_never_reproduces(self):
        v = B.decide(5, [(5, B.CLEAN)] * 10, B.Config(max_runs=10))
        self.assertEqual(v.kind, "not-reproduced")

    def test_bad_does_not_build(self):
        self.assertEqual(B.decide(5, [(5, B.BUILD_FAILED)]).kind, "untestable-bad")

    def test_budget_ends_inconclusive_with_probabilities(self):
        hist = [(50, B.DETECTED)] * 3 + [(0, B.CLEAN)]
        v = B.decide(50, hist, B.Config(max_runs=4))
        self.assertEqual(v.kind, "inconclusive")
        self.assertTrue(v.suspects and all(0 < p < 1 for _, p in v.suspects))
        v = B.decide(50, hist, B.Config(max_hours=1), elapsed_s=3601)
        self.assertEqual(v.kind, "inconclusive")

    def test_untestable_neighbour_gives_inconclusive_pair(self):
        # commit 3 never builds; culprit 3 or 4 cannot be told apart
        n, cfg = 8, B.Config()
        r = B.simulate(n, 4, 1.0, seed=1, build_fails={3}, cfg=cfg)
        v = r["verdict"]
        self.assertEqual(v.kind, "inconclusive")
        self.assertEqual({i for i, _ in v.suspects}, {3, 4})
        self.assertIn("3", str([i for i, _ in v.suspects]))

    def test_pure(self):
        hist = [(30, B.DETECTED)] * 2 + [(0, B.CLEAN), (15, B.CLEAN)]
        a, b = B.decide(30, list(hist), current=15), B.decide(30, list(hist), current=15)
        self.assertEqual(a, b)


class Simulated(unittest.TestCase):
    """Accuracy against simulated histories: one culprit, p per run, random infra skips."""

    def sweep(self, ns, ps, seeds, skip_rate, cfg=None):
        res = {}
        for n in ns:
            for p in ps:
                ok = runs = builds = 0
                for seed in range(seeds):
                    r = B.simulate(n, culprit_of(n, seed), p, seed, skip_rate=skip_rate, cfg=cfg)
                    ok += r["correct"]
                    runs += r["runs"]
                    builds += r["builds"]
                res[(n, p)] = (ok, seeds, runs / seeds, builds / seeds)
        return res

    def test_accuracy_p_at_least_0_2(self):
        # confidence 0.99; budget large enough not to cut the slow cases (the default 300 is the CLI's)
        t0 = time.monotonic()
        cfg = B.Config(confidence=0.99, max_runs=5000)
        plan = [((2, 5, 16, 64), (0.2, 0.3, 0.5, 0.9, 1.0), 20, 0.10),
                ((200,), (0.2, 0.5, 1.0), 12, 0.05),
                ((2000,), (0.2, 1.0), 3, 0.10)]
        ok = total = 0
        for ns, ps, seeds, skip in plan:
            for (n, p), (k, m, runs, builds) in sorted(self.sweep(ns, ps, seeds, skip, cfg).items()):
                print(f"  N={n:5d} p={p:4.2f} skip={skip:.2f}: {k}/{m} right, {runs:7.1f} runs, {builds:5.1f} builds")
                ok += k
                total += m
        print(f"  accuracy {ok}/{total} = {ok / total:.4f} in {time.monotonic() - t0:.1f} s")
        self.assertGreaterEqual(ok / total, 0.99)

    def test_low_p_is_never_confidently_wrong_often(self):
        # p = 0.05 / 0.1: the budget may end first (inconclusive), but a named culprit is wrong at most
        # about 1 - confidence of the time
        named = wrong = 0
        cfg = B.Config(max_runs=600)
        for p in (0.05, 0.1):
            for seed in range(12):
                c = culprit_of(16, seed)
                v = B.simulate(16, c, p, seed, skip_rate=0.05, cfg=cfg)["verdict"]
                if v.kind == "culprit":
                    named += 1
                    wrong += v.culprit != c
        self.assertLessEqual(wrong, max(1, named // 20))

    def test_deterministic_builds_within_log2_plus_2(self):
        # p = 1, a build costing 10 runs (an incremental kernel build against a short campaign); builds count
        # the bad end and good. Mean within ceil(log2 N) + 2; the worst seed needs one build more at some N
        # (the clean runs' residual mass moves the split off the middle near the end): asserted as +3
        cfg = B.Config(build_cost=10)
        worst = {}
        for n in (2, 3, 4, 7, 8, 16, 31, 100, 512, 2000):
            tot = 0
            for seed in range(5):
                c = culprit_of(n, seed)
                r = B.simulate(n, c, 1.0, seed, cfg=cfg)
                self.assertTrue(r["correct"], (n, c, r["verdict"]))
                self.assertLessEqual(r["builds"], math.ceil(math.log2(n)) + 3, (n, c, r))
                worst[n] = max(worst.get(n, 0), r["builds"])
                tot += r["builds"]
            worst[n] = (worst[n], tot / 5)
        print("  builds worst / mean vs ceil(log2 N) + 2: " + ", ".join(
            f"N={n}: {w}/{m:.1f} vs {math.ceil(math.log2(n)) + 2}" for n, (w, m) in worst.items()))

    def test_naive_strategy_model(self):
        # the baseline bench/bisect_sim.py compares with: exact for p = 1, wrong often for p = 0.2
        self.assertTrue(all(B.simulate_naive(64, culprit_of(64, s), 1.0, s)["correct"] for s in range(20)))
        right = sum(B.simulate_naive(64, culprit_of(64, s), 0.2, s)["correct"] for s in range(50))
        self.assertLess(right, 25)


if __name__ == "__main__":
    unittest.main()
