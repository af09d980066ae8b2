"""Unit tests of the VM runner's pure parts: kernel identification, module resolution, feature checks,
the cpio writer, the case matrix and job split, hang detection, how a guest's end is classified, and
the QEMU command line. No QEMU, no network: synthetic inputs only."""
import io
import lzma
import os
import struct
import tempfile
import unittest
import unittest.mock

from vm import initramfs, kernel, runner
from vm.errors import VmError
from vm.qemu import BASE_APPEND, InstanceSpec, QemuBackend, detect_accel


def fake_bzimage(path, version="6.9.0-test (me@host) #1 SMP", payload=b"\xfd7zXZ\x00rest", xload=1, proto=0x20f):
    b = bytearray(0x1000)
    b[0x1f1] = 1                                   # setup_sects: protected-mode code at 2*512
    b[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", b, 0x206, proto)
    struct.pack_into("<H", b, 0x236, xload)
    struct.pack_into("<H", b, 0x20e, 0x300 - 0x200)  # kernel_version pointer (relative to 0x200)
    b[0x300:0x300 + len(version) + 1] = version.encode() + b"\0"
    struct.pack_into("<II", b, 0x248, 0x10, len(payload))  # payload offset/length (from 0x400)
    b[0x410:0x410 + len(payload)] = payload
    with open(path, "wb") as f:
        f.write(bytes(b))


def fake_elf(path, machine=62, notes=(), banner=b"Linux version 6.9.0-elf (x@y) #1\0"):
    """64-bit LE ELF with one PT_NOTE program header holding `notes` [(name, type, desc)]."""
    note = b""
    for name, ntype, desc in notes:
        n = name + b"\0"
        note += struct.pack("<III", len(n), len(desc), ntype) + n.ljust((len(n) + 3) & ~3, b"\0") + desc.ljust((len(desc) + 3) & ~3, b"\0")
    hdr = bytearray(64)
    hdr[:4] = b"\x7fELF"
    hdr[4], hdr[5], hdr[6] = 2, 1, 1
    struct.pack_into("<HHI", hdr, 16, 2, machine, 1)
    phoff = 64
    struct.pack_into("<Q", hdr, 0x20, phoff)
    struct.pack_into("<HH", hdr, 0x36, 56, 1)
    note_off = 64 + 56
    ph = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4)
    with open(path, "wb") as f:
        f.write(bytes(hdr) + ph + note + banner)


class Identify(unittest.TestCase):
    def setUp(self):
        self.t = tempfile.TemporaryDirectory()
        self.d = self.t.name

    def tearDown(self):
        self.t.cleanup()

    def p(self, n):
        return os.path.join(self.d, n)

    def test_bzimage_release_and_compression(self):
        fake_bzimage(self.p("bz"))
        img = kernel.identify(self.p("bz"))
        self.assertEqual((img.fmt, img.release, img.compression), ("bzimage", "6.9.0-test", "xz"))

    def test_truncated_bzimage_refused(self):
        fake_bzimage(self.p("bz"))
        with open(self.p("bz"), "r+b") as f:
            f.seek(0x1f4)
            f.write(struct.pack("<I", (os.path.getsize(self.p("bz")) // 16) + 100))  # syssize past the end
        with self.assertRaisesRegex(VmError, "is truncated: its boot header says"):
            kernel.identify(self.p("bz"))

    def test_mutated_images_only_ever_raise_vmerror(self):
        """Fuzz-style property: truncations and byte flips of a bzImage and an ELF vmlinux are identified
        or refused with a VmError (one line), never another exception."""
        import random
        fake_bzimage(self.p("bz"))
        fake_elf(self.p("elf"), notes=[(b"Xen", 18, b"\0" * 8)])
        rng = random.Random(1234)
        for src in ("bz", "elf"):
            with open(self.p(src), "rb") as f:
                orig = f.read()
            for i in range(1500):
                b = bytearray(orig[: rng.randrange(1, len(orig) + 1)] if i % 3 == 0 else orig)
                for _ in range(rng.randrange(1, 8)):
                    if b:
                        b[rng.randrange(len(b))] = rng.randrange(256)
                with open(self.p("m"), "wb") as f:
                    f.write(bytes(b))
                try:
                    img = kernel.identify(self.p("m"))
                    kernel.pvh_vmlinux(img, os.path.join(self.d, "cache"))
                except VmError as e:
                    self.assertNotIn("\n", str(e))

    def test_bzimage_32bit_and_old_protocol_refused(self):
        fake_bzimage(self.p("bz32"), xload=0)
        with self.assertRaisesRegex(VmError, "32-bit x86 kernel"):
            kernel.identify(self.p("bz32"))
        fake_bzimage(self.p("old"), proto=0x202)
        with self.assertRaisesRegex(VmError, "too old"):
            kernel.identify(self.p("old"))

    def test_missing_directory_and_garbage(self):
        with self.assertRaisesRegex(VmError, "does not exist: pass a bzImage"):
            kernel.identify(self.p("nope"))
        with self.assertRaisesRegex(VmError, "is a directory"):
            kernel.identify(self.d)
        with open(self.p("txt"), "w") as f:
            f.write("hello\n" * 100)
        with self.assertRaisesRegex(VmError, "is not a Linux kernel image"):
            kernel.identify(self.p("txt"))

    def test_elf_pvh_note_and_arch(self):
        fake_elf(self.p("pvh"), notes=[(b"Xen", 18, b"\x00\x10\x00\x01")])
        img = kernel.identify(self.p("pvh"))
        self.assertEqual((img.fmt, img.release, img.pvh), ("elf", "6.9.0-elf", True))
        fake_elf(self.p("nopvh"), notes=[(b"GNU", 3, b"abcd"), (b"Xen", 17, b"1234")])
        self.assertFalse(kernel.identify(self.p("nopvh")).pvh)
        fake_elf(self.p("arm"), machine=183)
        with self.assertRaisesRegex(VmError, "kernel for arm64, not x86_64"):
            kernel.identify(self.p("arm"))
        fake_elf(self.p("notkernel"), banner=b"just a program\0")
        with self.assertRaisesRegex(VmError, "not a Linux kernel"):
            kernel.identify(self.p("notkernel"))

    def test_arm64_image_refused(self):
        b = bytearray(0x100)
        b[0x38:0x3c] = b"ARM\x64"
        with open(self.p("Image"), "wb") as f:
            f.write(bytes(b))
        with self.assertRaisesRegex(VmError, "arm64 kernel Image"):
            kernel.identify(self.p("Image"))

    def test_pvh_vmlinux_extracted_from_xz_bzimage(self):
        fake_elf(self.p("inner"), notes=[(b"Xen", 18, b"\0\0\0\1")])
        with open(self.p("inner"), "rb") as f:
            inner = f.read()
        fake_bzimage(self.p("bz"), payload=lzma.compress(inner, format=lzma.FORMAT_XZ))
        img = kernel.identify(self.p("bz"))
        out = kernel.pvh_vmlinux(img, self.p("cache"))
        with open(out, "rb") as f:
            self.assertEqual(f.read(), inner)
        self.assertEqual(kernel.pvh_vmlinux(img, self.p("cache")), out)  # cached

    def test_no_pvh_note_boots_bzimage(self):
        fake_elf(self.p("inner"))
        with open(self.p("inner"), "rb") as f:
            inner = f.read()
        fake_bzimage(self.p("bz"), payload=lzma.compress(inner, format=lzma.FORMAT_XZ))
        self.assertIsNone(kernel.pvh_vmlinux(kernel.identify(self.p("bz")), self.p("cache")))


def write_tree(d, dep, builtin="", softdep="", alias=""):
    os.makedirs(d, exist_ok=True)
    for name, text in (("modules.dep", dep), ("modules.builtin", builtin), ("modules.softdep", softdep),
                       ("modules.alias", alias)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)


DEP = """kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-delay.ko: kernel/drivers/md/dm-mod.ko
"""


class Modules(unittest.TestCase):
    def setUp(self):
        self.t = tempfile.TemporaryDirectory()
        write_tree(self.t.name, DEP, softdep="softdep ext4 pre: crypto-crc32c\nsoftdep libcrc32c pre: crc32c\n",
                   alias="alias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n")
        self.idx = kernel.ModuleIndex(self.t.name)

    def tearDown(self):
        self.t.cleanup()

    def test_dependencies_first_each_once(self):
        order, optional = self.idx.load_order(["virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "ext4"])
        self.assertEqual(len(order), len(set(order)))
        for mod, deps in self.idx.deps.items():
            if mod in order:
                for d in deps:
                    self.assertLess(order.index(d), order.index(mod), f"{d} must load before {mod}")
        self.assertIn("crc32c_generic", order)
        self.assertLess(order.index("crc32c_intel"), order.index("ext4"))
        self.assertEqual(set(optional), {"crc32c_intel", "crc32c_generic"})
        self.assertNotIn("xfs", order)  # only what was asked for

    def test_builtin_skipped(self):
        write_tree(self.t.name, DEP, builtin="kernel/drivers/virtio/virtio.ko\nkernel/fs/9p/9p.ko\n")
        idx = kernel.ModuleIndex(self.t.name)
        order, _ = idx.load_order(["virtio_blk", "9p"])
        self.assertNotIn("virtio", order)
        self.assertNotIn("9p", order)
        self.assertEqual(idx.state("9p"), "builtin")
        self.assertEqual(idx.state("xfs"), "module")
        self.assertEqual(idx.state("btrfs"), "missing")

    def test_initramfs_stages(self):
        k = kernel.Kernel(kernel.KernelImage("x", "elf", "6.9"), "x", "pvh-vmlinux", self.t.name, None)
        mods = initramfs.modules_for(k, ["xfs"])
        stages = {m: s for m, _, s in mods}
        self.assertEqual(stages["9p"], "root")
        self.assertEqual(stages["virtio_blk"], "root")
        self.assertEqual(stages["xfs"], "fs")
        self.assertEqual(stages["libcrc32c"], "fs")
        self.assertNotIn("ext4", stages)
        self.assertEqual([m for m, _, s in mods if s == "root"][-1], "9p")
        # device-mapper targets ride along as optional fs-stage modules, after their dependency;
        # dm_flakey is absent from this tree and simply left out
        req = {m: r for m, r, _ in mods}
        self.assertEqual((stages["dm_delay"], req["dm_delay"], req["dm_mod"]), ("fs", "optional", "optional"))
        names = [m for m, _, _ in mods]
        self.assertLess(names.index("dm_mod"), names.index("dm_delay"))
        self.assertNotIn("dm_flakey", names)


class Features(unittest.TestCase):
    def k(self, config, index, fs=("ext4",), mdir="/m"):
        k = kernel.Kernel(kernel.KernelImage("/k/bzImage", "bzimage", "6.9"), "/k/bzImage", "bzimage", mdir, config,
                          "/k/config-6.9" if config else "")
        k.features = kernel.feature_states(config, index, list(fs))
        return k

    def test_builtin_kernel_needs_no_modules(self):
        cfg = {s: "y" for _, _, s in kernel.ROOT_FEATURES} | {"CONFIG_EXT4_FS": "y"}
        kernel.check_features(self.k(cfg, None, mdir=None), ["ext4"])

    def test_missing_9p_named(self):
        cfg = {s: "y" for _, _, s in kernel.ROOT_FEATURES} | {"CONFIG_EXT4_FS": "y"}
        del cfg["CONFIG_9P_FS"]
        with self.assertRaisesRegex(VmError, r"lacks 9p filesystem \(CONFIG_9P_FS is not set"):
            kernel.check_features(self.k(cfg, None, mdir=None), ["ext4"])

    def test_modular_without_modules(self):
        cfg = {s: "m" for _, _, s in kernel.ROOT_FEATURES} | {"CONFIG_EXT4_FS": "m"}
        with self.assertRaisesRegex(VmError, "is modular .* pass --modules DIR"):
            kernel.check_features(self.k(cfg, None, mdir=None), ["ext4"])

    def test_module_file_missing_from_tree(self):
        with tempfile.TemporaryDirectory() as d:
            write_tree(d, DEP.replace("kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\n", ""))
            cfg = {s: "m" for _, _, s in kernel.ROOT_FEATURES} | {"CONFIG_XFS_FS": "m"}
            with self.assertRaisesRegex(VmError, "xfs.ko is not in"):
                kernel.check_features(self.k(cfg, kernel.ModuleIndex(d), fs=("xfs",), mdir=d), ["xfs"])

    def test_unknown_without_config_or_modules_is_left_to_the_boot(self):
        k = self.k(None, None, mdir=None)
        self.assertEqual(set(k.features.values()), {"unknown"})
        kernel.check_features(k, ["ext4"])  # the guest's init checks at boot


class Cpio(unittest.TestCase):
    def test_newc_layout(self):
        c = initramfs.Cpio()
        c.dir("bin")
        c.file("init", b"#!/bin/sh\n", 0o755)
        c.symlink("bin/sh", "busybox")
        c.chardev("dev/console", 5, 1)
        data = c.finish()
        self.assertEqual(len(data) % 512, 0)
        entries, pos = [], 0
        while True:
            h = data[pos:pos + 110]
            self.assertEqual(h[:6], b"070701")
            f = [int(h[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
            mode, size, namesize = f[1], f[6], f[11]
            name = data[pos + 110: pos + 110 + namesize - 1].decode()
            pos = (pos + 110 + namesize + 3) & ~3
            body = data[pos:pos + size]
            pos = (pos + size + 3) & ~3
            if name == "TRAILER!!!":
                break
            entries.append((name, mode, body, (f[9], f[10])))
        names = {e[0]: e for e in entries}
        self.assertEqual(names["init"][2], b"#!/bin/sh\n")
        self.assertEqual(names["init"][1] & 0o777, 0o755)
        self.assertEqual(names["bin/sh"][2], b"busybox")
        self.assertEqual(names["dev/console"][3], (5, 1))

    def test_init_script_mounts_root_readonly_and_loose(self):
        s = initramfs.init_script()
        self.assertIn("mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=524288,cache=loose fsroot /root", s)
        self.assertIn("load_modules fs &", s)
        self.assertLess(s.index("load_modules root"), s.index("mount -t 9p"))


class Policy(unittest.TestCase):
    CASES = [{"name": n, "fs": n.split("-")[0]} for n in
             ("ext4-punch-vs-fault-r0", "xfs-punch-vs-fault-r0", "ext4-punch-vs-fault-r1", "xfs-punch-vs-fault-r1")]

    def test_case_matrix_comes_from_fsrace_plan(self):
        fsrace = os.environ.get("FSRACE_BIN") or os.path.join(os.path.dirname(__file__), "../../build/harness/fsrace")
        if not os.access(fsrace, os.X_OK):
            self.skipTest("fsrace is not built")
        with tempfile.TemporaryDirectory() as d:
            camp = os.path.join(d, "c.toml")
            with open(camp, "w") as f:
                f.write('[campaign]\nfilesystems = ["ext4", "xfs"]\nscenarios = ["punch-vs-fault"]\nrepetitions = 2\n')
            cases = runner.plan_cases(fsrace, camp)
            self.assertEqual([c["name"] for c in cases], [c["name"] for c in self.CASES])
            self.assertEqual([(c["fs"], c["scenario"], c["rep"]) for c in cases][:2],
                             [("ext4", "punch-vs-fault", 0), ("xfs", "punch-vs-fault", 0)])
            self.assertEqual(cases[0]["device_size_mib"], 256)
            with open(camp, "w") as f:
                f.write('[campaign]\nfilesystems = ["ext4", "ext4"]\n')
            with self.assertRaises(VmError) as e:
                runner.plan_cases(fsrace, camp)
            self.assertIn("twice", str(e.exception))

    def test_split_jobs(self):
        cases = self.CASES
        self.assertEqual(len(runner.split_jobs(cases, 1)), 1)
        two = runner.split_jobs(cases, 2)
        self.assertEqual([len(g) for g in two], [2, 2])
        self.assertEqual({c["fs"] for c in two[0]}, {"ext4"})  # round-robin
        self.assertEqual(len(runner.split_jobs(cases, 10)), 4)  # never an empty VM
        self.assertEqual(sorted(c["name"] for g in runner.split_jobs(cases, 3) for c in g), sorted(c["name"] for c in cases))

    def test_default_jobs(self):
        self.assertEqual(runner.default_jobs(2), 1)
        self.assertEqual(runner.default_jobs(1), 1)
        self.assertEqual(runner.default_jobs(16), 8)

    def test_hang_watch(self):
        w = runner.HangWatch(10, now=0)
        w.feed(1, 5)
        w.feed(5, 9)
        self.assertFalse(w.hung(14.9))
        w.feed(14, 9)           # same value: no progress
        w.feed(14.5, None)      # no heartbeat read: no progress either
        self.assertTrue(w.hung(15))
        self.assertAlmostEqual(w.stalled_for(16), 11)
        w.feed(16, 10)
        self.assertFalse(w.hung(25))

    def test_classify_end(self):
        c = runner.classify_end
        self.assertEqual(c(True, 0, b"", 0, ""), ("exited", "agent exit status 0"))
        self.assertEqual(c(True, None, b"x\n[ 9.1] Kernel panic - not syncing: sysrq triggered crash\nmore", 0, "")[0], "crashed")
        self.assertIn("sysrq triggered crash", c(True, None, b"Kernel panic - not syncing: sysrq triggered crash\n", 0, "")[1])
        self.assertEqual(c(False, None, b"fsrace-init: error: no 9p here\n", 0, ""), ("init-error", "no 9p here"))
        self.assertEqual(c(False, None, b"", 1, "qemu: could not open disk\n")[0], "qemu-failed")
        self.assertEqual(c(False, None, b"", 1, "qemu: could not open disk\n")[1], "exit status 1: qemu: could not open disk")
        self.assertEqual(c(False, None, b"early boot junk", 0, "")[0], "boot-failed")
        self.assertEqual(c(True, None, b"no panic", 0, "")[0], "crashed")
        self.assertEqual(c(True, None, b"", -9, "qemu: killed\n")[0], "died")

    def test_qemu_killed_from_outside_is_not_a_crash(self):
        c = runner.classify_end
        # SIGKILL (the OOM killer): no stderr, no panic, return code -9 -> a harness failure.
        out, detail = c(True, None, b"[ 5.0] fsrace-agent: started\nracing for 60 s\n", -9, "")
        self.assertEqual(out, "died")
        self.assertIn("SIGKILL", detail)
        self.assertIn("from outside fsrace", detail)
        self.assertEqual(c(False, None, b"early boot", -9, "")[0], "died")
        # SIGTERM from someone else: QEMU shuts the guest down and exits 0, saying so on stderr.
        out, detail = c(True, None, b"racing\n", 0,
                        "qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)\n")
        self.assertEqual(out, "died")
        self.assertIn("SIGTERM from pid 4242 (kill)", detail)
        # QEMU aborting on its own is a QEMU failure too.
        out, detail = c(True, None, b"", -6, "qemu: fatal: something\n")
        self.assertEqual(out, "died")
        self.assertIn("SIGABRT", detail)
        self.assertIn("qemu: fatal: something", detail)
        self.assertEqual(c(True, None, b"", 1, "")[0], "died")  # nonzero exit, no message: not a guest reset

    def test_memmap_layout(self):
        from vm import qemu
        # above the guest's own RAM, 128 MiB sections, one free section between regions and on top
        self.assertEqual(qemu.memmap_layout(1024, [256, 320]), (1920, [(1024, 256), (1408, 384)]))
        self.assertEqual(qemu.memmap_layout(1000, [100]), (1280, [(1024, 128)]))
        self.assertEqual(qemu.memmap_layout(1024, []), (1024, []))
        with self.assertRaises(VmError) as cm:
            qemu.memmap_layout(2048, [1024])
        self.assertIn("below 4 GiB", str(cm.exception))

    def test_restart_plan(self):
        rp = runner.restart_plan
        cases = ["a", "b", "c"]
        # hang in the heartbeat's case: the others run in a fresh boot, the hung one is not rerun
        self.assertEqual(rp("hang", cases, set(), "a"), ("a", ["b", "c"]))
        self.assertEqual(rp("crashed", cases, {"a"}, "b"), ("b", ["c"]))
        # a stale heartbeat (the case had finished) or none: the first unfinished case
        self.assertEqual(rp("crashed", cases, {"a"}, "a"), ("b", ["c"]))
        self.assertEqual(rp("hang", cases, set(), ""), ("a", ["b", "c"]))
        # nothing left: no restart
        self.assertEqual(rp("hang", cases, {"a", "b"}, "c"), ("c", []))
        self.assertEqual(rp("crashed", cases, {"a", "b", "c"}, "c"), ("", []))
        self.assertEqual(rp("exited", cases, {"a", "b", "c"}, "c"), ("", []))
        # [vm] power_cut: the next boot verifies the case the cut ended, then runs the rest
        self.assertEqual(rp("power-cut", cases, set(), "a"), ("a", ["a", "b", "c"]))
        self.assertEqual(rp("power-cut", cases, {"a"}, "b"), ("b", ["b", "c"]))
        # only hangs and crashes restart; QEMU dying, boot failures and interrupts end the VM's job
        for outcome in ("died", "boot-failed", "init-error", "qemu-failed", "interrupted", "exited"):
            self.assertEqual(rp(outcome, cases, {"a"}, "b"), ("b", []))
        # bounded: every restart leaves one case fewer, so at most len(cases) - 1 restarts
        left, boots = cases, 0
        while True:
            _, left = rp("hang", left, set(), "")
            if not left:
                break
            boots += 1
        self.assertEqual(boots, len(cases) - 1)

    def test_env_error_names_file_place_and_fix(self):
        import errno as E
        places = [("/r/run", "the run directory", "--results / --run-dir"), ("/w", "the work directory", "--workdir"),
                  ("/repo/.cache", "fsrace's cache", "")]
        m = runner.env_error(OSError(E.ENOSPC, "No space left on device", "/r/run/vm0/agent.sh"), places)
        self.assertEqual(m, "/r/run/vm0/agent.sh: No space left on device (in the run directory): free space on the "
                            "filesystem of the run directory or pick another --results / --run-dir, then rerun")
        m = runner.env_error(OSError(E.EROFS, "Read-only file system", "/w/fsrace-vm0.x/ext4.img"), places)
        self.assertIn("(in the work directory): make the work directory writable or pick another --workdir", m)
        m = runner.env_error(OSError(E.ENOSPC, "No space left on device", "/repo/.cache/vm/accel.json"), places)
        self.assertTrue(m.endswith("free space on the filesystem of fsrace's cache, then rerun"), m)
        self.assertNotIn("\n", runner.env_error(OSError(E.EIO, "Input/output error"), places))

    def test_write_text_names_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "missing", "f")
            with self.assertRaises(OSError) as cm:
                runner.write_text(p, "x")
            self.assertEqual(cm.exception.filename, p)
            q = os.path.join(d, "vm.json")
            runner.write_atomic(q, "{}")
            self.assertEqual(os.listdir(d), ["vm.json"])
            if os.path.exists("/dev/full"):  # ENOSPC at flush: the file is named and no temp file stays
                with self.assertRaises(OSError) as cm:
                    runner.write_text("/dev/full", "x" * 100)
                self.assertEqual((cm.exception.errno, cm.exception.filename), (28, "/dev/full"))

    def test_guest_reset_is_still_a_crash(self):
        c = runner.classify_end
        # Triple fault / reboot with no panic line: -no-reboot makes QEMU exit 0 on its own.
        self.assertEqual(c(True, None, b"racing\n", 0, "")[0], "crashed")
        # A panic in the console is a crash whatever happened to QEMU afterwards.
        self.assertEqual(c(True, None, b"Kernel panic - not syncing: Fatal exception\n", -9, "")[0], "crashed")


class Accel(unittest.TestCase):
    def test_forced_accel_is_checked(self):
        with self.assertRaisesRegex(VmError, "^FSRACE_ACCEL=bogus: must be kvm or tcg"):
            detect_accel("k", "i", "/nonexistent", "bogus")
        self.assertEqual(detect_accel("k", "i", "/nonexistent", "tcg")[0], "tcg")
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            with self.assertRaisesRegex(VmError, "^FSRACE_ACCEL=kvm but /dev/kvm is"):
                detect_accel("k", "i", "/nonexistent", "kvm")


class QemuArgv(unittest.TestCase):
    def test_command_line(self):
        try:
            b = QemuBackend("tcg", 2, 1024)
        except VmError:
            self.skipTest("qemu-system-x86_64 not installed")
        a = b.create(InstanceSpec("/k/vmlinux", "/k/initrd", "extra=1", "/r/vm0", ["/w/ext4.img", "/w/xfs.img"],
                                  "/r/console.log", "/w")).argv()
        s = " ".join(a)
        self.assertIn("-accel tcg,thread=multi -cpu max", s)
        self.assertIn("local,path=/,mount_tag=fsroot,security_model=none,readonly=on", s)
        self.assertIn("local,path=/r/vm0,mount_tag=fsout,security_model=none", s)
        self.assertIn("file=/w/ext4.img,if=none,id=disk0,format=raw,cache=none", s)
        self.assertLess(s.index("ext4.img"), s.index("xfs.img"))  # vda, vdb in campaign order
        self.assertIn("file,id=con,path=/r/console.log", s)
        self.assertIn("-nic none", s)
        self.assertIn("-no-reboot", s)
        self.assertIn(BASE_APPEND + " extra=1", a)
        self.assertIn("fsrace.guest=1", BASE_APPEND)
        kvm = QemuBackend("kvm", 1, 512).accel_args()
        self.assertEqual(kvm, ["-accel", "kvm", "-cpu", "host"])
        self.assertNotIn("-runas", a)
        from vm.qemu import Isolation, SANDBOX
        iso = Isolation("nobody", 65534, 65534, True, "x")
        a = b.create(InstanceSpec("/k/vmlinux", "/k/initrd", "", "/r/vm0", [], "/r/console.log", "/w", isolation=iso)).argv()
        self.assertEqual(a[a.index("-runas") + 1], "nobody")
        self.assertEqual(a[a.index("-sandbox") + 1], SANDBOX)


class IsolationPlan(unittest.TestCase):
    """Who QEMU runs as: an unprivileged user when fsrace is root and the guest can reach what it runs."""

    def test_plan(self):
        from vm import qemu
        help_text = "-runas user\n-sandbox on\n"
        with tempfile.TemporaryDirectory() as d:
            binary = os.path.join(d, "fsrace")
            with open(binary, "w") as f:
                f.write("x")
            os.chmod(binary, 0o755)
            os.chmod(d, 0o755)
            with unittest.mock.patch("os.geteuid", return_value=0):
                iso = qemu.plan_isolation([binary], help_text)
                self.assertEqual(iso.user, qemu.GUEST_USER)
                self.assertTrue(iso.sandbox)
                self.assertIn("world-readable", iso.note)
                os.chmod(d, 0o700)  # the guest could not run the binary as nobody: root, and the note says why
                iso = qemu.plan_isolation([binary], help_text)
                self.assertIsNone(iso.user)
                self.assertIn(f"chmod o+rx {os.path.realpath(d)}", iso.note)
                os.chmod(d, 0o755)
                self.assertIsNone(qemu.plan_isolation([binary], "-sandbox on").user)  # no -runas in this QEMU
            # a results filesystem that refuses chown (root_squash): the share cannot be handed over
            if os.geteuid() == 0:
                self.assertTrue(qemu.shares_can_change_owner(d, qemu.Isolation("nobody", 65534, 65534)))
            with unittest.mock.patch("os.chown", side_effect=PermissionError(1, "Operation not permitted")):
                self.assertFalse(qemu.shares_can_change_owner(d, qemu.Isolation("nobody", 65534, 65534)))
            self.assertFalse(qemu.shares_can_change_owner(os.path.join(d, "missing"), qemu.Isolation("nobody", 65534, 65534)))
            self.assertEqual(sorted(os.listdir(d)), ["fsrace"])  # the scratch directories are gone
            with unittest.mock.patch("os.geteuid", return_value=0), \
                    unittest.mock.patch("vm.qemu.shares_can_change_owner", return_value=False):
                iso = qemu.plan_isolation([binary], help_text, d)
                self.assertIsNone(iso.user)
                self.assertIn("root_squash", iso.note)
            with unittest.mock.patch("os.geteuid", return_value=1000):
                iso = qemu.plan_isolation([binary], help_text)
                self.assertIsNone(iso.user)
                self.assertIn("invoking user", iso.note)


if __name__ == "__main__":
    unittest.main()


class GuestKeepDirTest(unittest.TestCase):
    """A tree under /tmp or /var/tmp (a CI clone) is bound through the guest's tmpfs (fsrace.keep=)."""

    def test_keep_dirs(self):
        from vm.runner import guest_keep_dir
        self.assertEqual(guest_keep_dir("/tmp/ciclone/build/harness/fsrace"), "/tmp/ciclone")
        self.assertEqual(guest_keep_dir("/var/tmp/a/b/fsrace"), "/var/tmp/a")
        self.assertIsNone(guest_keep_dir("/work/main/build/harness/fsrace"))
        self.assertIsNone(guest_keep_dir("/run/x/fsrace"))
        self.assertIsNone(guest_keep_dir("/tmp/with space/fsrace"))

    def test_init_script_binds_keep(self):
        from vm.initramfs import init_script
        s = init_script()
        self.assertIn("fsrace.keep=", s)
        # the bind must be taken before the tmpfs hides the path, and put back after it
        self.assertLess(s.index('mount -o bind "/root$KEEP" /keep'), s.index("tmpfs /root/tmp"))
        self.assertLess(s.index("tmpfs /root/var/tmp"), s.index('mount -o bind /keep "/root$KEEP"'))


class LiveStatusTest(unittest.TestCase):
    """The VM campaign's live line (vm/status.py): what it says, and that plain lines print above it."""

    def test_line_names_time_cases_vms_rate_and_findings(self):
        from vm.status import VmStatus
        st = VmStatus(4, 80.0, live=False, clock=lambda: 100.0)
        st.booting(0)
        st.booting(1)
        self.assertEqual(st.render(100.0), "[fsrace 0:00 / ~1:20] cases 0/4  vm0 booting; vm1 booting  findings: none")
        st.heartbeat(0, "ext4-punch-vs-fault", "race", 1000, 10.0)
        st.heartbeat(0, "ext4-punch-vs-fault", "race", 21000, 12.0)  # 10k ops/s of guest time
        st.heartbeat(0, "ext4-punch-vs-fault", "race", 21000, 12.0)  # the same heartbeat read again: no change
        st.heartbeat(1, "xfs-punch-vs-fault", "setup", 5, 3.0)
        st.case_done(1, "xfs-dio-vs-mmap", {"stale": 3, "cache-incoherent": 1})
        st.case_done(1, "xfs-dio-vs-mmap", {"stale": 3})  # told twice: counted once
        st.case_done(0, "ext4-dio-vs-mmap", {})
        line = st.render(125.0)
        self.assertEqual(line, "[fsrace 0:25 / ~1:20] cases 2/4  vm0 ext4-punch-vs-fault race 10.0k ops/s; "
                               "vm1 xfs-punch-vs-fault setup  findings: cache-incoherent 1, stale 3")
        st.vm_ended(1)
        self.assertNotIn("vm1", st.render(126.0))
        ex = VmStatus(0, 600.0, live=False, clock=lambda: 0.0)  # explore: no case list
        ex.heartbeat(0, "round-3-ext4-punch-vs-fault", "race", 10, 1.0)
        self.assertEqual(ex.render(60.0), "[fsrace 1:00 / ~10:00]  vm0 round-3-ext4-punch-vs-fault race  findings: none")

    def test_terminal_repaints_and_plain_lines_go_above(self):
        import io
        from vm.status import VmStatus
        out = io.StringIO()
        t = [0.0]
        st = VmStatus(1, 20.0, live=True, stream=out, clock=lambda: t[0])
        st.booting(0)
        t[0] = 1.0
        st.tick()
        st.line("fsrace: vm0: QEMU start -> agent start 9.1 s")
        st.close()
        text = out.getvalue()
        self.assertTrue(text.startswith("\r\033[K[fsrace 0:01 / ~0:20] cases 0/1  vm0 booting"), text)
        self.assertIn("\r\033[Kfsrace: vm0: QEMU start -> agent start 9.1 s\n\r\033[K[fsrace", text)
        self.assertTrue(text.endswith("\r\033[K"), text)
        # not live (piped): only the plain line, no escape sequences
        out2 = io.StringIO()
        st2 = VmStatus(1, 20.0, live=False, stream=out2, clock=lambda: 5.0)
        st2.tick()
        st2.line("fsrace: done")
        st2.close()
        self.assertEqual(out2.getvalue(), "fsrace: done\n")

    def test_terminal_detection_honours_plain_progress_and_dumb(self):
        from vm.status import stderr_is_terminal

        class Tty:
            def isatty(self):
                return True
        with unittest.mock.patch.dict(os.environ, {"TERM": "xterm"}, clear=False):
            os.environ.pop("FSRACE_PLAIN_PROGRESS", None)
            self.assertTrue(stderr_is_terminal(Tty()))
            os.environ["FSRACE_PLAIN_PROGRESS"] = "1"
            self.assertFalse(stderr_is_terminal(Tty()))
            del os.environ["FSRACE_PLAIN_PROGRESS"]
            os.environ["TERM"] = "dumb"
            self.assertFalse(stderr_is_terminal(Tty()))
