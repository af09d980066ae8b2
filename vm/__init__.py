"""fsrace VM mode: boot a kernel build in QEMU and run a campaign inside it (see README, VM mode)."""
