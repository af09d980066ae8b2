"""Unit tests for kernels/kbuild.py logic that need no kernel build, no apt and no root.

Run from the repo root: python3 -m unittest kernels.test_kbuild  (or: python3 kernels/test_kbuild.py)
"""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kbuild  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run_main(argv):
    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = kbuild.main(argv)
    return rc, out.getvalue(), err.getvalue()


class VariantNames(unittest.TestCase):
    def test_good(self):
        for name in ("stock", "no-invalidate-lock", "ext4-da-no-recheck", "v1.2", "a"):
            self.assertEqual(kbuild.validate_variant(name), name)

    def test_bad(self):
        for name in ("", "Stock", "a/b", "../x", "-x", "x" * 41, "a b"):
            with self.assertRaises(kbuild.KbuildError, msg=name):
                kbuild.validate_variant(name)

    def test_reserved(self):
        for name in ("src", "work"):
            with self.assertRaisesRegex(kbuild.KbuildError, "reserved"):
                kbuild.validate_variant(name)

    def test_layout_is_per_variant(self):
        a = kbuild.Layout("/c", "stock")
        b = kbuild.Layout("/c", "no-invalidate-lock")
        self.assertEqual(a.work, Path("/c/work/stock"))
        self.assertEqual(a.bzimage, Path("/c/stock/bzImage"))
        self.assertEqual(a.vmlinux, Path("/c/stock/vmlinux"))
        self.assertEqual(a.meta, Path("/c/stock/kbuild.json"))
        self.assertEqual(a.log, Path("/c/stock/build.log"))
        self.assertNotEqual(a.work, b.work)
        self.assertNotEqual(a.out, b.out)
        self.assertNotIn(a.work, b.work.parents)

    def test_cache_root_env(self):
        with mock.patch.dict(os.environ, {"FSRACE_KERNEL_CACHE": "/tmp/kc"}):
            self.assertEqual(kbuild.cache_root(), Path("/tmp/kc").resolve())
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(kbuild.cache_root(), REPO / ".cache" / "kernels")
        self.assertEqual(kbuild.cache_root("/x/y"), Path("/x/y"))


class PatchLookup(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        (self.tmp / "foo.patch").write_text("--- a/x\n+++ b/x\n")

    def test_known_variants_map_to_checked_in_patches(self):
        self.assertIsNone(kbuild.resolve_patch("stock"))
        for variant, name in kbuild.KNOWN_VARIANTS.items():
            if name:
                self.assertEqual(kbuild.resolve_patch(variant), kbuild.PATCH_DIR / f"{name}.patch")

    def test_unknown_variant_without_patch_is_unpatched(self):
        self.assertIsNone(kbuild.resolve_patch("experiment", None, self.tmp))
        self.assertIsNone(kbuild.resolve_patch("no-invalidate-lock", "none", self.tmp))

    def test_by_name_with_or_without_suffix(self):
        self.assertEqual(kbuild.resolve_patch("v", "foo", self.tmp), self.tmp / "foo.patch")
        self.assertEqual(kbuild.resolve_patch("v", "foo.patch", self.tmp), self.tmp / "foo.patch")

    def test_missing_name_lists_available(self):
        with self.assertRaises(kbuild.KbuildError) as cm:
            kbuild.resolve_patch("v", "bar", self.tmp)
        msg = str(cm.exception)
        self.assertIn("'bar'", msg)
        self.assertIn("available: foo", msg)

    def test_explicit_path(self):
        p = self.tmp / "foo.patch"
        self.assertEqual(kbuild.resolve_patch("v", str(p)), p.resolve())
        with self.assertRaisesRegex(kbuild.KbuildError, "does not exist"):
            kbuild.resolve_patch("v", str(self.tmp / "nope.patch"))

    def test_cli_missing_patch_exits_2_one_line(self):
        rc, _, err = run_main(["--cache", str(self.tmp), "build", "x", "--patch", "definitely-missing"])
        self.assertEqual(rc, 2)
        self.assertEqual(len(err.strip().splitlines()), 1)
        self.assertIn("definitely-missing", err)

    def test_cli_reserved_variant_exits_2(self):
        rc, _, err = run_main(["--cache", str(self.tmp), "build", "work"])
        self.assertEqual(rc, 2)
        self.assertIn("reserved", err)

    def test_cli_path_of_unbuilt_variant(self):
        rc, _, err = run_main(["--cache", str(self.tmp), "path", "stock"])
        self.assertEqual(rc, 2)
        self.assertIn("not built", err)


@unittest.skipUnless(shutil.which("patch"), "patch(1) not installed")
class PatchFailureMessage(unittest.TestCase):
    def test_names_patch_and_file(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        (tmp / "mm").mkdir()
        (tmp / "mm" / "filemap.c").write_text("one\ntwo\nthree\n")
        patch = tmp / "bad.patch"
        patch.write_text("--- a/mm/filemap.c\n+++ b/mm/filemap.c\n@@ -1,3 +1,3 @@\n one\n-TWO\n+2\n three\n")
        with self.assertRaises(kbuild.KbuildError) as cm:
            kbuild.apply_patch(tmp, patch)
        msg = str(cm.exception)
        self.assertIn("bad.patch", msg)
        self.assertIn("mm/filemap.c", msg)
        self.assertIn("1 of 1 hunk", msg)
        self.assertEqual((tmp / "mm" / "filemap.c").read_text(), "one\ntwo\nthree\n")  # untouched

    def test_missing_file(self):
        msg = kbuild.summarize_patch_failure("x.patch", "can't find file to patch at input line 3\n")
        self.assertIn("x.patch", msg)
        self.assertIn("does not exist", msg)

    def test_good_patch_applies(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        (tmp / "f.c").write_text("one\ntwo\n")
        patch = tmp / "ok.patch"
        patch.write_text("header comment\n\n--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n")
        kbuild.apply_patch(tmp, patch)
        self.assertEqual((tmp / "f.c").read_text(), "one\n2\n")
        self.assertFalse(list(tmp.glob("*.orig")))


class ConfigFragments(unittest.TestCase):
    def test_guest_fragment_parses_and_has_essentials(self):
        cfg = kbuild.parse_config(kbuild.GUEST_FRAGMENT.read_text(), origin="guest.config")
        for sym in ("VIRTIO_PCI", "VIRTIO_BLK", "VIRTIO_CONSOLE", "NET_9P_VIRTIO", "9P_FS", "TMPFS",
                    "DEVTMPFS", "DEVTMPFS_MOUNT", "EXT4_FS", "XFS_FS", "BLK_DEV_LOOP", "PVH",
                    "SERIAL_8250_CONSOLE", "MAGIC_SYSRQ", "DEBUG_INFO_BTF", "BPF_SYSCALL", "BPF_JIT",
                    "KPROBES", "FTRACE", "FUNCTION_TRACER", "BPF_EVENTS", "KPROBE_EVENTS",
                    "FAIL_FUNCTION", "BPF_KPROBE_OVERRIDE", "FAULT_INJECTION"):
            self.assertEqual(cfg.get(f"CONFIG_{sym}"), "y", sym)
        # Nothing the guest needs to boot may be a module.
        self.assertNotIn("m", cfg.values())
        self.assertIsNone(cfg["CONFIG_DRM"])

    def test_debug_fragment_parses(self):
        cfg = kbuild.parse_config((REPO / "kernels" / "debug.config").read_text())
        self.assertEqual(cfg.get("CONFIG_PROVE_LOCKING"), "y")

    def test_parse_forms(self):
        cfg = kbuild.parse_config('# comment\n\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S="-x"\nCONFIG_N=64\n')
        self.assertEqual(cfg, {"CONFIG_A": "y", "CONFIG_B": None, "CONFIG_S": '"-x"', "CONFIG_N": "64"})

    def test_strict_rejects_garbage_and_eq_n(self):
        with self.assertRaisesRegex(kbuild.KbuildError, r"frag:2: not a Kconfig line"):
            kbuild.parse_config("CONFIG_A=y\nPVH=y\n", origin="frag")
        with self.assertRaisesRegex(kbuild.KbuildError, "is not set"):
            kbuild.parse_config("CONFIG_A=n\n", origin="frag")
        # .config parsing is lenient
        self.assertEqual(kbuild.parse_config("junk\nCONFIG_A=y\n", strict=False), {"CONFIG_A": "y"})

    def test_mismatches(self):
        requested = {"CONFIG_A": "y", "CONFIG_B": None, "CONFIG_C": "y", "CONFIG_D": '"x"', "CONFIG_E": None}
        final = {"CONFIG_A": "y", "CONFIG_C": "m", "CONFIG_D": '"x"', "CONFIG_E": "y"}
        bad = kbuild.config_mismatches(requested, final)
        self.assertEqual(bad, ["CONFIG_C=y (got m)", "CONFIG_E=n (got y)"])  # absent B is fine

    def test_config_inputs_id(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        a, b = tmp / "a.config", tmp / "b.config"
        a.write_text("CONFIG_A=y\n")
        b.write_text("CONFIG_B=y\n")
        one = kbuild.config_inputs_id([a])
        self.assertEqual(one, kbuild.config_inputs_id([a]))
        self.assertNotEqual(one, kbuild.config_inputs_id([a, b]))
        a.write_text("CONFIG_A=y\nCONFIG_C=y\n")
        self.assertNotEqual(one, kbuild.config_inputs_id([a]))


class BuildLogs(unittest.TestCase):
    def test_first_error_ignores_configure_noise(self):
        text = ("\n$ make defconfig\n*** Default configuration is based on 'x86_64_defconfig'\n"
                "\n$ make -j2 LOCALVERSION=-x bzImage\n  CC      mm/filemap.o\n"
                "mm/filemap.c:10:5: error: 'mapping' undeclared\n"
                "make[2]: *** [scripts/Makefile.build:250: mm/filemap.o] Error 1\n")
        self.assertEqual(kbuild.first_build_error(text), "mm/filemap.c:10:5: error: 'mapping' undeclared")
        self.assertIsNone(kbuild.first_build_error("\n$ make -j2 bzImage\n  CC a.o\n  LD vmlinux\n"))

    def test_write_json_atomic(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        kbuild.write_json(tmp / "k.json", {"b": 1, "a": 2})
        self.assertEqual((tmp / "k.json").read_text(), '{\n  "a": 2,\n  "b": 1\n}\n')
        self.assertIsNone(kbuild.read_stamp(tmp))   # no stamp file there


class Relocate(unittest.TestCase):
    def test_rewrites_text_keeps_mtime_skips_binary(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        old, new = "/c/work/stock", "/c/work/v2"
        (tmp / "tools").mkdir()
        cmd = tmp / "tools" / ".check.o.cmd"
        cmd.write_text(f"cmd := gcc -o {old}/tools/objtool/check.o\n")
        binary = tmp / "tools" / "objtool"
        binary.write_bytes(b"\x7fELF\0" + old.encode())
        other = tmp / "Makefile"
        other.write_text("all:\n")
        os.utime(cmd, (1000, 1000))
        self.assertEqual(kbuild.relocate_tree(tmp, old, new), 1)
        self.assertEqual(cmd.read_text(), f"cmd := gcc -o {new}/tools/objtool/check.o\n")
        self.assertEqual(cmd.stat().st_mtime, 1000)
        self.assertIn(old.encode(), binary.read_bytes())
        self.assertEqual(other.read_text(), "all:\n")


class BootCheck(unittest.TestCase):
    REL = "6.1.192-fsrace-stock"

    def test_ok(self):
        ok, why = kbuild.judge_boot(f"Linux version {self.REL} (gcc) #1\n...\n"
                                    "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
                                    self.REL)
        self.assertTrue(ok, why)

    def test_wrong_release(self):
        ok, why = kbuild.judge_boot("Linux version 6.1.192-fsrace-other (gcc)\nVFS: Unable to mount root fs\n",
                                    self.REL)
        self.assertFalse(ok)
        self.assertIn(self.REL, why)

    def test_early_oops(self):
        ok, why = kbuild.judge_boot(f"Linux version {self.REL} (gcc)\nBUG: kernel NULL pointer dereference\n",
                                    self.REL)
        self.assertFalse(ok)
        self.assertIn("NULL pointer", why)

    def test_timeout(self):
        self.assertEqual(kbuild.judge_boot(f"Linux version {self.REL} (gcc)\n", self.REL),
                         (False, "timed out before the root mount"))

    def test_qemu_cmd_is_tcg(self):
        cmd = kbuild.qemu_boot_cmd("/k/bzImage")
        self.assertIn("tcg,thread=multi", cmd)
        self.assertNotIn("kvm", " ".join(cmd))
        self.assertIn("-no-reboot", cmd)


class Preconditions(unittest.TestCase):
    def test_not_root_without_package(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        with mock.patch.object(kbuild, "USR_SRC", tmp), mock.patch.object(kbuild.os, "geteuid", return_value=1000):
            with self.assertRaisesRegex(kbuild.KbuildError, "needs root"):
                kbuild.ensure_source_package()
            with self.assertRaisesRegex(kbuild.KbuildError, "--no-apt"):
                kbuild.ensure_source_package(allow_apt=False)

    def test_finds_tarball(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        (tmp / "linux-source-6.1.tar.xz").write_bytes(b"")
        with mock.patch.object(kbuild, "USR_SRC", tmp):
            self.assertEqual(kbuild.ensure_source_package(allow_apt=False), tmp / "linux-source-6.1.tar.xz")

    def test_missing_tools_named_by_package(self):
        with mock.patch.object(kbuild, "BUILD_TOOLS", {"fsrace-no-such-tool": "fsrace-pkg"}), \
             mock.patch.object(kbuild, "BUILD_HEADERS", {"/nonexistent/x.h": "libx-dev"}):
            with self.assertRaisesRegex(kbuild.KbuildError, "fsrace-pkg libx-dev.*install-kbuild-deps"):
                kbuild.check_build_tools()


class CheckedInPatches(unittest.TestCase):
    """The patches stay minimal: they touch only the files of their fix."""

    @staticmethod
    def touched(name):
        text = (kbuild.PATCH_DIR / f"{name}.patch").read_text()
        return sorted({l[6:].split("\t")[0] for l in text.splitlines() if l.startswith("+++ b/")}), text

    def test_ext4_revert(self):
        files, text = self.touched("revert-ext4-da-recheck")
        self.assertEqual(files, ["fs/ext4/inode.c"])
        self.assertIn("0ea6560abb3b", text)
        self.assertIn("mkwrite-vs-fallocate", text)
        added = [l for l in text.splitlines() if l.startswith("+") and not l.startswith("+++")]
        self.assertEqual(added, [])   # a pure revert: only removals
        self.assertIn("-found:", text)

    def test_invalidate_lock(self):
        files, text = self.touched("no-invalidate-lock-in-fault")
        self.assertEqual(files, ["mm/filemap.c", "mm/readahead.c"])
        self.assertIn("punch-vs-fault", text)
        diff = text[text.index("\n--- a/"):]
        added = [l for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
        removed = [l for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
        self.assertFalse([l for l in added if "invalidate_lock" in l and "(" in l and "/*" not in l])
        self.assertGreaterEqual(sum("filemap_invalidate_lock_shared(" in l for l in removed), 5)
        self.assertFalse([l for l in removed if "filemap_invalidate_lock(" in l])  # exclusive side kept


if __name__ == "__main__":
    unittest.main()
