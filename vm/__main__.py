"""python3 -m vm run ...   (called by `./fsrace run --kernel K`, which validated the campaign first)
python3 -m vm bench-boot [--kernel K] [--runs N]   (QEMU start -> agent start benchmark)
python3 -m vm kernel K [--modules DIR] [--fs ext4,xfs]   (what fsrace sees in a kernel; exit 2 if unusable)
"""
import argparse
import os
import sys

from .errors import VmError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m vm", description="fsrace VM mode (use ./fsrace run --kernel K)")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a resolved campaign in QEMU guests (internal: ./fsrace run --kernel K)")
    r.add_argument("--run-dir", required=True)
    r.add_argument("--run-id", default="")
    r.add_argument("--kernel", required=True)
    r.add_argument("--modules")
    r.add_argument("--jobs", type=int, default=0)
    r.add_argument("--fsrace", required=True, help="the fsrace binary (the guest runs the same one)")
    r.add_argument("--source", default="")
    r.add_argument("--workdir", default="/var/tmp", help="where disk images live during the run")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--shard", default="", help="I/N: this shard of the case matrix (fsrace run --shard)")
    r.add_argument("--explore", default="", help="BUDGET_S,ROUND_S,REPEATS: fsrace explore's rounds in one guest")
    b = sub.add_parser("bench-boot", help="benchmark: QEMU start -> guest agent start")
    b.add_argument("--kernel", default="debian")
    b.add_argument("--modules")
    b.add_argument("--runs", type=int, default=3)
    b.add_argument("--fs", default="ext4,xfs")
    b.add_argument("--fsrace", default=None)
    k = sub.add_parser("kernel", help="identify a kernel and check it can run fsrace guests")
    k.add_argument("kernel")
    k.add_argument("--modules")
    k.add_argument("--fs", default="ext4,xfs")
    a = p.parse_args(argv)
    try:
        if a.cmd == "run":
            from .runner import run
            return run(a)
        if a.cmd == "bench-boot":
            from .bench_boot import bench
            return bench(a)
        if a.cmd == "kernel":
            from . import kernel
            from .runner import repo_top
            kk = kernel.resolve(a.kernel, a.modules, a.fs.split(","), os.path.join(repo_top(), ".cache"))
            print(f"release {kk.image.release}\nformat {kk.image.fmt} ({kk.image.compression or 'uncompressed'})\n"
                  f"boot {kk.boot_kind}: {kk.boot_path}\nmodules {kk.modules_dir or '(none: built-in)'}\n"
                  f"config {kk.config_source or '(not found)'}\nfeatures {kk.features}")
            return 0
    except VmError as e:
        print(f"fsrace: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the host environment (run's own paths are named more precisely by runner.run)
        from .runner import env_error
        print(f"fsrace: {env_error(e, [])}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fsrace: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
