"""Unit tests for kernels/kbuild.py logic that need no kernel build, no apt and no root.

Run from the repo root: python3 -m unittest kernels.test_kbuild  (or: python3 kernels/test_kbuild.py)
"""

import contextlib
import io
import json
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
        for name in ("src", "work", "builds"):
            with self.assertRaisesRegex(kbuild.KbuildError, "reserved"):
                kbuild.validate_variant(name)

    def test_cache_root_env(self):
        with mock.patch.dict(os.environ, {"FSRACE_KERNEL_CACHE": "/tmp/kc"}):
            self.assertEqual(kbuild.cache_root(), Path("/tmp/kc").resolve())
        with mock.patch.dict(os.environ, {}, clear=True):
            self.assertEqual(kbuild.cache_root(), Path("/var/cache/fsrace/kernels"))
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
        self.assertIn("no kernel build 'stock'", err)
        self.assertEqual(len(err.strip().splitlines()), 1)


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
        for sym in ("VIRTIO_PCI", "VIRTIO_BLK", "NET_9P_VIRTIO", "9P_FS", "TMPFS",
                    "DEVTMPFS", "DEVTMPFS_MOUNT", "EXT4_FS", "XFS_FS", "BLK_DEV_LOOP", "PVH",
                    "SERIAL_8250_CONSOLE", "MAGIC_SYSRQ", "DEBUG_INFO_BTF", "BPF_SYSCALL", "BPF_JIT",
                    "KPROBES", "FTRACE", "FUNCTION_TRACER", "BPF_EVENTS", "KPROBE_EVENTS",
                    "FAIL_FUNCTION", "BPF_KPROBE_OVERRIDE", "FAULT_INJECTION"):
            self.assertEqual(cfg.get(f"CONFIG_{sym}"), "y", sym)
        # Nothing the guest needs to boot may be a module.
        self.assertNotIn("m", cfg.values())
        for sym in ("SMP", "PROC_FS", "SYSFS", "BLK_DEV_INITRD", "MODULES", "KALLSYMS", "BLK_DEV_DM", "DM_DELAY",
                    "DM_FLAKEY", "DYNAMIC_FTRACE_WITH_DIRECT_CALLS", "TRACEPOINTS", "PRINTK", "USERFAULTFD"):
            self.assertEqual(cfg.get(f"CONFIG_{sym}"), "y", sym)
        optional = set()
        kbuild.parse_config(kbuild.GUEST_FRAGMENT.read_text(), optional=optional)
        self.assertIn("CONFIG_FPROBE", optional)
        self.assertNotIn("CONFIG_DEBUG_INFO_BTF", optional)

    def test_guest_fragment_dax_and_trim(self):
        optional = set()
        cfg = kbuild.parse_config(kbuild.GUEST_FRAGMENT.read_text(), optional=optional)
        # What vm/kernel.py's PMEM_FEATURES check in the config, and what they need: required, not optional.
        for sym in ("ACPI", "ACPI_NFIT", "LIBNVDIMM", "BLK_DEV_PMEM", "ND_PFN", "NVDIMM_PFN", "FS_DAX",
                    "ZONE_DEVICE", "MEMORY_HOTPLUG", "MEMORY_HOTREMOVE", "SPARSEMEM_VMEMMAP", "X86_PMEM_LEGACY"):
            self.assertEqual(cfg.get(f"CONFIG_{sym}"), "y", sym)
            self.assertNotIn(f"CONFIG_{sym}", optional)
        # Trimmed, but what ceph and 9p need stays: INET (ceph on 127.0.0.1) and the virtio transport.
        for sym in ("IPV6", "VT", "INPUT", "CPU_FREQ", "ETHTOOL_NETLINK", "INET_DIAG", "NET_9P_FD"):
            self.assertIn(f"CONFIG_{sym}", cfg, sym)
            self.assertIsNone(cfg[f"CONFIG_{sym}"], sym)
        for sym in ("NET", "INET", "CEPH_FS", "CEPH_LIB", "NET_9P_VIRTIO", "TRANSPARENT_HUGEPAGE"):
            self.assertEqual(cfg.get(f"CONFIG_{sym}"), "y", sym)

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

    def test_build_errors_of_the_build_run_only(self):
        text = ("\n$ make -C s O=o allnoconfig\nwarning: error: in config\n"
                "\n$ make build: make -j2 -C s O=o bzImage\n  CC fs/ext4/inode.o\n"
                "fs/ext4/inode.c:1:1: error: one\nfs/ext4/inode.c:2:1: error: two\n"
                "fs/ext4/inode.c:3:1: error: three\nfs/ext4/inode.c:4:1: error: four\n"
                "make[3]: *** [x] Error 1\n")
        self.assertEqual(kbuild.build_errors(text), ["fs/ext4/inode.c:1:1: error: one",
                                                     "fs/ext4/inode.c:2:1: error: two",
                                                     "fs/ext4/inode.c:3:1: error: three"])

    def test_write_json_atomic(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        kbuild.write_json(tmp / "k.json", {"b": 1, "a": 2})
        self.assertEqual((tmp / "k.json").read_text(), '{\n  "a": 2,\n  "b": 1\n}\n')
        self.assertIsNone(kbuild.read_json(tmp / "none.json"))


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
            with self.assertRaisesRegex(kbuild.KbuildError, "Debian packages fsrace-pkg libx-dev.*install-kbuild-deps"):
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

    def test_ceph_dio_invalidation(self):
        files, text = self.touched("ceph-dio-no-invalidate")
        self.assertEqual(files, ["fs/ceph/file.c"])
        self.assertIn("dio-vs-mmap", text)
        self.assertIn("not clean", text)  # why it is not a ctest proof (stock's refill race)
        diff = text[text.index("\n--- a/"):]
        added = [l[1:].strip() for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
        removed = [l for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
        # only the page-cache drops of the O_DIRECT write go; what is added re-spells the mtime assignment
        self.assertEqual(added, ["if (write)"])
        self.assertEqual(sum("invalidate_inode_pages2_range(" in l for l in removed), 1)
        self.assertEqual(sum("truncate_inode_pages_range(" in l for l in removed), 1)
        self.assertFalse([l for l in removed if "r_mtime" in l or "fscache" in l])


class OptionalAndOverlay(unittest.TestCase):
    FRAG = ("CONFIG_A=y\n# fsrace: optional\nCONFIG_NEW=y\n# CONFIG_OLD is not set\n# fsrace: required\n"
            "CONFIG_B=64\n")

    def test_optional_section(self):
        opt = set()
        cfg = kbuild.parse_config(self.FRAG, optional=opt)
        self.assertEqual(cfg, {"CONFIG_A": "y", "CONFIG_NEW": "y", "CONFIG_OLD": None, "CONFIG_B": "64"})
        self.assertEqual(opt, {"CONFIG_NEW", "CONFIG_OLD"})

    def test_later_fragment_makes_optional_required(self):
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp)
        (tmp / "a").write_text(self.FRAG)
        (tmp / "b").write_text("CONFIG_NEW=y\n# CONFIG_A is not set\n")
        req, opt = kbuild.requested_config([tmp / "a", tmp / "b"])
        self.assertEqual(req["CONFIG_A"], None)
        self.assertEqual(opt, {"CONFIG_OLD"})

    def test_overlay_replaces_and_appends(self):
        base = "CONFIG_A=n\n# CONFIG_B is not set\nCONFIG_C=y\n# CONFIG_AB is not set\n"
        text = kbuild.overlay_config(base, {"CONFIG_A": "y", "CONFIG_B": "64", "CONFIG_D": None})
        cfg = kbuild.parse_config(text, strict=False)
        self.assertEqual(cfg, {"CONFIG_A": "y", "CONFIG_B": "64", "CONFIG_C": "y", "CONFIG_AB": None,
                               "CONFIG_D": None})
        self.assertEqual(text.count("CONFIG_A="), 1)

    def test_verify_splits_required_and_optional(self):
        req = {"CONFIG_A": "y", "CONFIG_NEW": "y", "CONFIG_B": "64", "CONFIG_OFF": None}
        final = "CONFIG_A=y\nCONFIG_B=32\nCONFIG_OFF=y\n"
        missing, missing_opt = kbuild.verify_config(req, {"CONFIG_NEW"}, final)
        self.assertEqual(missing, ["CONFIG_B=64 (got 32)", "CONFIG_OFF=n (got y)"])
        self.assertEqual(missing_opt, ["CONFIG_NEW=y (got n)"])


class DebugSets(unittest.TestCase):
    def test_known_sets(self):
        got = kbuild.debug_fragments("lockdep, xfs-debug,lockdep")
        self.assertEqual([n for n, _ in got], ["lockdep", "xfs-debug"])
        self.assertEqual(got[1][1], REPO / "kernels" / "xfs-debug.config")
        for name in ("lockdep", "kasan", "kcsan", "xfs-debug", "debug-vm", "ubsan", "kmemleak"):
            [(n, path)] = kbuild.debug_fragments(name)
            kbuild.parse_config(path.read_text(), origin=str(path))    # strict: valid fragments

    def test_unknown_names_the_known(self):
        with self.assertRaisesRegex(kbuild.KbuildError, r"unknown debug set 'kasn' \(known: .*kasan.*lockdep"):
            kbuild.debug_fragments("kasn")

    def test_kasan_kcsan_exclusive(self):
        with self.assertRaisesRegex(kbuild.KbuildError, "exclude each other"):
            kbuild.debug_fragments("kasan,kcsan")

    def test_empty(self):
        self.assertEqual(kbuild.debug_fragments(None), [])
        self.assertEqual(kbuild.debug_fragments(""), [])


class CacheKeys(unittest.TestCase):
    def test_build_id_depends_on_everything_that_makes_the_image(self):
        base = dict(source={"git": "/r/.git", "commit": "a" * 40}, patches_sha=["p1"], config_id="c1",
                    name="x", compiler="gcc 12")
        one = kbuild.build_id(**base)
        self.assertRegex(one, r"^[0-9a-f]{12}$")
        self.assertEqual(one, kbuild.build_id(**base))
        for key, other in (("source", {"git": "/r/.git", "commit": "b" * 40}), ("patches_sha", []),
                           ("config_id", "c2"), ("name", None), ("compiler", "gcc 13")):
            self.assertNotEqual(one, kbuild.build_id(**dict(base, **{key: other})), key)

    def test_work_key_shared_across_revisions_not_configs(self):
        a = kbuild.work_key("/r/.git", "private", "c1")
        self.assertEqual(a, kbuild.work_key("/r/.git", "private", "c1"))
        self.assertNotEqual(a, kbuild.work_key("/r/.git", "private", "c2"))
        self.assertNotEqual(a, kbuild.work_key("/other/.git", "private", "c1"))
        self.assertNotEqual(a, kbuild.work_key("/r/.git", "in-place", "c1"))

    def test_config_inputs_include_debug_sets(self):
        frags = [kbuild.GUEST_FRAGMENT]
        with_debug = frags + [p for _, p in kbuild.debug_fragments("lockdep")]
        self.assertNotEqual(kbuild.config_inputs_id(frags), kbuild.config_inputs_id(with_debug))


class ProgressLines(unittest.TestCase):
    def test_phases_and_a_line_per_30s_off_a_terminal(self):
        now = [100.0]
        out = io.StringIO()
        p = kbuild.Progress("stock", out=out, tty=False, clock=lambda: now[0])
        for line in ("  HOSTCC  scripts/basic/fixdep", "  CC      init/main.o", "  CC      fs/ext4/inode.o"):
            p.feed(line)
        self.assertEqual((p.phase, p.compiled), ("compile", 2))
        now[0] += 10
        p.tick()
        self.assertEqual(out.getvalue(), "")
        now[0] += 21
        p.tick()
        self.assertEqual(out.getvalue(), "kbuild: stock: compile, 2 objects compiled, 0m31s elapsed\n")
        p.feed("  LD      vmlinux.o")
        self.assertEqual(p.phase, "link vmlinux")
        p.feed("  BTF     .btf.vmlinux.bin.o")
        self.assertEqual(p.phase, "BTF (pahole)")
        p.feed("  CC      init/version.o")       # the link's version object: still linking
        self.assertEqual(p.phase, "BTF (pahole)")
        p.feed("  BUILD   arch/x86/boot/bzImage")
        self.assertEqual(p.phase, "bzImage")
        now[0] += 5
        p.tick()
        self.assertEqual(len(out.getvalue().splitlines()), 1)

    def test_terminal_redraws_one_line(self):
        now = [0.0]
        out = io.StringIO()
        p = kbuild.Progress("x", out=out, tty=True, clock=lambda: now[0])
        now[0] = 2
        p.tick()
        now[0] = 4
        p.tick()
        p.done()
        self.assertEqual(out.getvalue().count("\r"), 3)
        self.assertNotIn("\n", out.getvalue())


# ---------------------------------------------------------------- fake kernel trees and a fake make

FAKE_MAKE = r"""#!/usr/bin/env python3
# Stands in for make(1): the kbuild targets kbuild.py runs, on a tiny fake kernel tree.
import os, re, sys
args = sys.argv[1:]
obj = next(a[2:] for a in args if a.startswith("O="))
src = args[args.index("-C") + 1]
target = args[-1]
os.makedirs(obj, exist_ok=True)
cfg = os.path.join(obj, ".config")
drop = set(filter(None, os.environ.get("FAKE_MAKE_DROP", "").split(",")))
with open(os.environ["FAKE_MAKE_LOG"], "a") as f:
    f.write(target + "\n")
if target == "allnoconfig":
    open(cfg, "w").write("CONFIG_64BIT=n\\n# CONFIG_SMP is not set\\n")
elif target == "olddefconfig":
    lines = [l for l in open(cfg).read().splitlines() if not any(l.startswith(d + "=") for d in drop)]
    open(cfg, "w").write("\n".join(lines) + "\n")
elif target == "bzImage":
    print("  HOSTCC  scripts/basic/fixdep")
    for f in sorted(os.listdir(os.path.join(src, "fs"))):
        print("  CC      fs/" + f.replace(".c", ".o"))
    if os.environ.get("FAKE_MAKE_FAIL"):
        print("fs/ext4/inode.c:12:3: error: 'x' undeclared (first use in this function)")
        print("make[3]: *** [scripts/Makefile.build:250: fs/ext4/inode.o] Error 1")
        sys.exit(2)
    lv = next((a.split("=", 1)[1] for a in args if a.startswith("LOCALVERSION=")), "")
    for d in ("arch/x86/boot", "include/config"):
        os.makedirs(os.path.join(obj, d), exist_ok=True)
    body = "".join(open(os.path.join(src, "fs", f)).read() for f in sorted(os.listdir(os.path.join(src, "fs"))))
    open(os.path.join(obj, "arch/x86/boot/bzImage"), "w").write("fake bzImage\n" + body)
    open(os.path.join(obj, "vmlinux"), "w").write("fake vmlinux\n")
    open(os.path.join(obj, "System.map"), "w").write("0 T start\n")
    open(os.path.join(obj, "include/config/kernel.release"), "w").write("6.1.0-fsrace" + lv + "\n")
    print("  BUILD   arch/x86/boot/bzImage")
"""


def make_fake_tree(root, files=None):
    root = Path(root)
    for d in ("arch/x86", "scripts/kconfig", "kernel/configs", "fs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text("# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    (root / "Kconfig").write_text("mainmenu \"fake\"\n")
    (root / "kernel/configs/kvm_guest.config").write_text("CONFIG_VIRTIO=y\n")
    for name, text in (files or {"inode.c": "int inode;\n"}).items():
        (root / "fs" / name).write_text(text)
    return root


class FakeBase(unittest.TestCase):
    """kbuild.py end to end on a tiny fake tree with a fake make on PATH: seconds, no compiler run."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp)
        self.cache = self.tmp / "cache"
        bindir = self.tmp / "bin"
        bindir.mkdir()
        (bindir / "make").write_text(FAKE_MAKE)
        (bindir / "make").chmod(0o755)
        self.make_log = self.tmp / "make.log"
        env = {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_MAKE_LOG": str(self.make_log),
               "FSRACE_CCACHE_DIR": str(self.tmp / "ccache")}
        for k in ("FAKE_MAKE_DROP", "FAKE_MAKE_FAIL"):
            env[k] = ""
        patcher = mock.patch.dict(os.environ, env)
        patcher.start()
        self.addCleanup(patcher.stop)
        for target, value in (("BUILD_TOOLS", {}), ("BUILD_HEADERS", {})):
            p = mock.patch.object(kbuild, target, value)
            p.start()
            self.addCleanup(p.stop)
        # the guest fragment, small: one required and one optional option
        self.frag = self.tmp / "guest.config"
        self.frag.write_text("CONFIG_64BIT=y\nCONFIG_SMP=y\nCONFIG_BPF_KPROBE_OVERRIDE=y\n"
                             "# fsrace: optional\nCONFIG_FPROBE=y\n")
        p = mock.patch.object(kbuild, "GUEST_FRAGMENT", self.frag)
        p.start()
        self.addCleanup(p.stop)

    def build(self, *argv):
        return run_main(["--cache", str(self.cache), "build", "--no-ccache", "-j1", *argv])

    def assert_one_line_error(self, rc, err, *needles):
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        for n in needles:
            self.assertIn(n, err)

    def assert_nothing_listed(self):
        self.assertEqual(kbuild.list_builds(self.cache), [])


class FakeBuilds(FakeBase):

    def test_tree_builds_records_and_is_listed(self):
        tree = make_fake_tree(self.tmp / "linux")
        rc, out, err = self.build("--src", str(tree), "exp1")
        self.assertEqual(rc, 0, err)
        image = Path(out.strip().splitlines()[-1])
        self.assertEqual(image.name, "bzImage")
        self.assertTrue(image.is_file())
        meta = json.loads((image.parent / "kbuild.json").read_text())
        self.assertEqual(meta["name"], "exp1")
        self.assertEqual(meta["release"], "6.1.0-fsrace-exp1")
        self.assertEqual(meta["source"]["kind"], "tree")
        self.assertIn("gcc", meta["compiler"])
        self.assertGreaterEqual(meta["build_seconds"], 0)
        cfg = (image.parent / ".config").read_text()
        self.assertIn("CONFIG_SMP=y", cfg)
        self.assertEqual(meta["cpu_seconds"] >= 0, True)
        self.assertTrue((image.parent / "vmlinux").is_file())
        self.assertTrue((image.parent / "build.log").is_file())
        self.assertEqual([l for l in self.make_log.read_text().split()],
                         ["allnoconfig", "kvm_guest.config", "olddefconfig", "bzImage"])
        # listed, found by id, prefix and name
        [m] = kbuild.list_builds(self.cache)
        self.assertEqual(kbuild.find_build(self.cache, meta["id"][:6])["id"], meta["id"])
        self.assertEqual(kbuild.find_build(self.cache, "exp1")["id"], meta["id"])
        rc, out, _ = run_main(["--cache", str(self.cache), "list"])
        self.assertIn(meta["id"], out)
        self.assertIn("exp1", out)
        rc, out, _ = run_main(["--cache", str(self.cache), "path", "exp1", "--file", "vmlinux"])
        self.assertEqual(out.strip(), str(image.parent / "vmlinux"))
        # a second run is a cache hit: no make at all, same image path last
        self.make_log.write_text("")
        rc, out, err = self.build("--src", str(tree), "exp1")
        self.assertEqual((rc, out.strip().splitlines()[-1]), (0, str(image)), err)
        self.assertEqual(self.make_log.read_text(), "")
        # the user's tree got no build output
        self.assertFalse((tree / ".config").exists())
        # the VM runner resolves the id (and the name) to the image
        sys.path.insert(0, str(REPO))
        from vm import kernel as vmkernel
        with mock.patch.dict(os.environ, {"FSRACE_KERNEL_CACHE": str(self.cache)}):
            self.assertEqual(vmkernel.kernel_build_image(meta["id"]), str(image))
            self.assertEqual(vmkernel.kernel_build_image(meta["id"][:5]), str(image))
            self.assertEqual(vmkernel.kernel_build_image("exp1"), str(image))
            self.assertIsNone(vmkernel.kernel_build_image("nothing-here"))
            self.assertIsNone(vmkernel.kernel_build_image(str(image)))

    def test_config_change_reconfigures_same_config_does_not(self):
        tree = make_fake_tree(self.tmp / "linux")
        self.assertEqual(self.build("--src", str(tree), "a")[0], 0)
        self.make_log.write_text("")
        self.assertEqual(self.build("--src", str(tree), "b")[0], 0)     # other name: build, no configure
        self.assertEqual(self.make_log.read_text().split(), ["bzImage"])
        self.make_log.write_text("")
        frag = self.tmp / "extra.config"
        frag.write_text("CONFIG_EXTRA=y\n")
        rc, out, err = self.build("--src", str(tree), "a", "--fragment", str(frag))
        self.assertEqual(rc, 0, err)
        self.assertIn("allnoconfig", self.make_log.read_text())
        self.assertEqual(len(kbuild.list_builds(self.cache)), 3)

    def test_config_only_verifies_and_builds_nothing(self):
        tree = make_fake_tree(self.tmp / "linux")
        rc, out, err = self.build("--src", str(tree), "--config-only")
        self.assertEqual(rc, 0, err)
        cfg = Path(out.strip().splitlines()[-1])
        self.assertEqual(cfg.name, ".config")
        self.assertIn("CONFIG_BPF_KPROBE_OVERRIDE=y", cfg.read_text())
        self.assertNotIn("bzImage", self.make_log.read_text())
        self.assert_nothing_listed()

    def test_required_option_dropped_stops_and_names_it(self):
        tree = make_fake_tree(self.tmp / "linux")
        with mock.patch.dict(os.environ, {"FAKE_MAKE_DROP": "CONFIG_BPF_KPROBE_OVERRIDE,CONFIG_SMP"}):
            rc, out, err = self.build("--src", str(tree))
        self.assert_one_line_error(rc, err, "2 requested config options are not set",
                                   "CONFIG_SMP=y (got n)", "CONFIG_BPF_KPROBE_OVERRIDE=y (got n)")
        self.assertNotIn("bzImage", self.make_log.read_text())
        self.assert_nothing_listed()

    def test_optional_option_dropped_warns_and_goes_on(self):
        tree = make_fake_tree(self.tmp / "linux")
        with mock.patch.dict(os.environ, {"FAKE_MAKE_DROP": "CONFIG_FPROBE"}):
            rc, out, err = self.build("--src", str(tree))
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: optional config options not set in this tree (going on): CONFIG_FPROBE=y", err)
        [m] = kbuild.list_builds(self.cache)
        self.assertEqual(m["config_optional_missing"], ["CONFIG_FPROBE=y (got n)"])

    def test_compiler_failure_first_errors_and_log(self):
        tree = make_fake_tree(self.tmp / "linux")
        with mock.patch.dict(os.environ, {"FAKE_MAKE_FAIL": "1"}):
            rc, out, err = self.build("--src", str(tree), "broken")
        self.assert_one_line_error(rc, err, "build of broken failed (make exit 2)",
                                   "fs/ext4/inode.c:12:3: error: 'x' undeclared", "full log: ")
        logpath = Path(err.strip().rsplit("full log: ", 1)[1])
        self.assertIn("error: 'x' undeclared", logpath.read_text())
        self.assert_nothing_listed()
        self.assertEqual(list((self.cache / "builds").glob(".tmp-*")) if (self.cache / "builds").exists() else [], [])

    def test_not_a_kernel_tree(self):
        (self.tmp / "notkernel").mkdir()
        (self.tmp / "notkernel" / "Makefile").write_text("all:\n")
        for src in (self.tmp / "notkernel", self.tmp / "missing"):
            rc, _, err = self.build("--src", str(src))
            self.assert_one_line_error(rc, err, str(src))
        self.assertFalse((self.cache / "work").exists())

    def test_in_tree_build_refused(self):
        tree = make_fake_tree(self.tmp / "linux")
        (tree / ".config").write_text("CONFIG_X=y\n")
        rc, _, err = self.build("--src", str(tree))
        self.assert_one_line_error(rc, err, "in-tree build", "make mrproper")

    def test_rev_needs_git(self):
        tree = make_fake_tree(self.tmp / "linux")
        rc, _, err = self.build("--src", str(tree), "--rev", "HEAD~1")
        self.assert_one_line_error(rc, err, "--rev HEAD~1 needs a git work tree")

    def test_missing_tools_name_packages(self):
        tree = make_fake_tree(self.tmp / "linux")
        with mock.patch.object(kbuild, "BUILD_TOOLS", {"fsrace-no-pahole": "dwarves"}):
            rc, _, err = self.build("--src", str(tree))
        self.assert_one_line_error(rc, err, "install the Debian packages dwarves")
        self.assert_nothing_listed()

    def test_bad_inputs_one_line(self):
        tree = make_fake_tree(self.tmp / "linux")
        for argv, needle in ((["--src", str(tree), "--debug", "nope"], "unknown debug set 'nope'"),
                             (["--src", str(tree), "--fragment", str(self.tmp / "none.config")], "does not exist"),
                             (["--src", str(tree), "--patch", str(self.tmp / "none.patch")], "does not exist"),
                             (["--src", str(tree), "Bad/Name"], "bad build name"),
                             (["--rev", "v6.1"], "--rev needs --src"),
                             ([], "say what to build")):
            rc, _, err = self.build(*argv)
            self.assert_one_line_error(rc, err, needle)
        rc, _, err = run_main(["--cache", str(self.cache), "build", "--jobs", "x"])
        self.assert_one_line_error(rc, err, "invalid int value")
        rc, _, err = run_main(["--cache", str(self.cache), "nosuch"])
        self.assert_one_line_error(rc, err, "invalid choice")
        self.assert_nothing_listed()


@unittest.skipUnless(shutil.which("git") and shutil.which("patch") and shutil.which("rsync"), "needs git, patch, rsync")
class FakeGitBuilds(FakeBase):
    def git(self, *args):
        subprocess.run(["git", "-C", str(self.repo), *args], check=True, capture_output=True,
                       env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                                GIT_COMMITTER_EMAIL="t@t"))

    def setUp(self):
        super().setUp()
        self.repo = make_fake_tree(self.tmp / "repo", {"inode.c": "int v1;\n", "super.c": "int s;\n"})
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "v1")
        self.git("tag", "v1")
        (self.repo / "fs" / "inode.c").write_text("int v2;\n")
        self.git("commit", "-q", "-am", "v2")

    def test_rev_builds_that_commit_in_a_private_checkout(self):
        before = subprocess.run(["git", "-C", str(self.repo), "status", "--porcelain", "--ignored"],
                                capture_output=True, text=True).stdout
        rc, out, err = self.build("--src", str(self.repo), "--rev", "v1")
        self.assertEqual(rc, 0, err)
        image = Path(out.strip().splitlines()[-1])
        self.assertIn("int v1;", image.read_text())
        meta = json.loads((image.parent / "kbuild.json").read_text())
        self.assertEqual(meta["git"]["describe"], "v1")
        self.assertEqual(meta["git"]["rev"], "v1")
        self.assertEqual(len(meta["git"]["commit"]), 40)
        self.assertFalse(meta["git"]["dirty"])
        rc, out, err = self.build("--src", str(self.repo))            # HEAD = v2, same work dir
        self.assertEqual(rc, 0, err)
        image2 = Path(out.strip().splitlines()[-1])
        self.assertIn("int v2;", image2.read_text())
        meta2 = json.loads((image2.parent / "kbuild.json").read_text())
        self.assertEqual(meta2["work_dir"], meta["work_dir"])          # one O= dir for every revision
        self.assertNotEqual(meta2["id"], meta["id"])
        self.assertTrue(meta2["git"]["describe"].startswith("v1-1-g"))
        # configured once: the second revision has the same Kconfig files
        self.assertEqual(self.make_log.read_text().split().count("allnoconfig"), 1)
        after = subprocess.run(["git", "-C", str(self.repo), "status", "--porcelain", "--ignored"],
                               capture_output=True, text=True).stdout
        self.assertEqual(before, after)                                # the user's tree is untouched

    def test_dirty_refused_unless_allowed(self):
        (self.repo / "fs" / "inode.c").write_text("int dirty;\n")
        rc, _, err = self.build("--src", str(self.repo))
        self.assert_one_line_error(rc, err, "uncommitted changes (1 files, e.g. fs/inode.c)", "--allow-dirty")
        self.assert_nothing_listed()
        rc, out, err = self.build("--src", str(self.repo), "--allow-dirty")
        self.assertEqual(rc, 0, err)
        image = Path(out.strip().splitlines()[-1])
        self.assertIn("int dirty;", image.read_text())
        self.assertTrue(json.loads((image.parent / "kbuild.json").read_text())["git"]["dirty"])
        # a dirty tree does not matter when a commit is built
        rc, out, err = self.build("--src", str(self.repo), "--rev", "v1")
        self.assertEqual(rc, 0, err)

    def test_unknown_rev(self):
        rc, _, err = self.build("--src", str(self.repo), "--rev", "no-such-rev")
        self.assert_one_line_error(rc, err, "revision 'no-such-rev' is not a commit")

    def test_patches_applied_in_the_checkout_and_reverted_next_time(self):
        patch = self.tmp / "p.patch"
        patch.write_text("--- a/fs/inode.c\n+++ b/fs/inode.c\n@@ -1 +1 @@\n-int v2;\n+int patched;\n")
        rc, out, err = self.build("--src", str(self.repo), "--patch", str(patch), "pat")
        self.assertEqual(rc, 0, err)
        image = Path(out.strip().splitlines()[-1])
        self.assertIn("int patched;", image.read_text())
        self.assertTrue((image.parent / "patches" / "p.patch").is_file())
        self.assertEqual((self.repo / "fs" / "inode.c").read_text(), "int v2;\n")
        rc, out, err = self.build("--src", str(self.repo), "plain")
        self.assertEqual(rc, 0, err)
        self.assertIn("int v2;", Path(out.strip().splitlines()[-1]).read_text())
        bad = self.tmp / "bad.patch"
        bad.write_text("--- a/fs/inode.c\n+++ b/fs/inode.c\n@@ -1 +1 @@\n-int nothere;\n+int x;\n")
        rc, _, err = self.build("--src", str(self.repo), "--patch", str(bad))
        self.assert_one_line_error(rc, err, "patch bad.patch does not apply", "fs/inode.c")


class NonGitPatchedTree(FakeBase):
    @unittest.skipUnless(shutil.which("patch") and shutil.which("rsync"), "needs patch, rsync")
    def test_copy_gets_patch_and_restores_the_file_afterwards(self):
        tree = make_fake_tree(self.tmp / "linux", {"inode.c": "int orig;\n", "super.c": "int s;\n"})
        p1 = self.tmp / "p1.patch"
        p1.write_text("--- a/fs/inode.c\n+++ b/fs/inode.c\n@@ -1 +1 @@\n-int orig;\n+int patched;\n")
        p2 = self.tmp / "p2.patch"
        p2.write_text("--- a/fs/super.c\n+++ b/fs/super.c\n@@ -1 +1 @@\n-int s;\n+int s2;\n")
        rc, out, err = self.build("--src", str(tree), "--patch", str(p1), "v")
        self.assertEqual(rc, 0, err)
        self.assertIn("int patched;", Path(out.strip().splitlines()[-1]).read_text())
        self.assertEqual((tree / "fs" / "inode.c").read_text(), "int orig;\n")     # the user's tree: untouched
        meta = kbuild.list_builds(self.cache)[0]
        copy = Path(meta["work_dir"]) / "src" / "fs"
        untouched_mtime = (copy / "Makefile").stat().st_mtime_ns if (copy / "Makefile").exists() else None
        patched_mtime = (copy / "inode.c").stat().st_mtime_ns
        rc, out, err = self.build("--src", str(tree), "--patch", str(p2), "v")
        self.assertEqual(rc, 0, err)
        self.assertEqual(kbuild.list_builds(self.cache)[0]["work_dir"], meta["work_dir"])   # same copy, same O=
        self.assertEqual((copy / "inode.c").read_text(), "int orig;\n")
        self.assertEqual((copy / "super.c").read_text(), "int s2;\n")
        self.assertGreaterEqual((copy / "inode.c").stat().st_mtime_ns, patched_mtime)   # restored = newer: rebuilt



class WorkLayout(unittest.TestCase):
    """A patched copy of Debian's tree sees its sources at the same path relative to its O= dir as the
    stock build (what CCACHE_BASEDIR makes of every path), so its objects hit the stock build's cache."""

    def test_patched_debian_variant_mirrors_the_stock_relative_paths(self):
        cache = Path("/var/cache/x/kernels")
        tree = cache / "src" / "linux-source-6.1"
        stock = kbuild.Source("debian", tree, "d", {}, tree=tree, private=False)
        variant = kbuild.Source("debian", tree, "d", {}, tree=tree, private=True)
        _, _, sobj, ssrc = kbuild.work_layout(cache, stock, "cfg")
        vk, vwork, vobj, vsrc = kbuild.work_layout(cache, variant, "cfg")
        self.assertEqual(ssrc, tree)
        self.assertEqual(os.path.relpath(ssrc, sobj), os.path.relpath(vsrc, vobj))
        self.assertEqual(os.path.relpath(ssrc, sobj), "../../../src/linux-source-6.1")
        self.assertTrue(str(vsrc).startswith(str(vwork)) and str(vobj).startswith(str(vwork)))
        self.assertNotEqual(vk, kbuild.work_layout(cache, stock, "cfg")[0])

    def test_git_tree_keeps_its_private_checkout(self):
        cache = Path("/c")
        src = kbuild.Source("git", Path("/home/u/linux/.git"), "g", {}, private=True)
        _, work, obj, tree = kbuild.work_layout(cache, src, "cfg")
        self.assertEqual((obj, tree), (work / "obj", work / "src"))

if __name__ == "__main__":
    unittest.main()
