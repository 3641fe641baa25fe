# shellcheck shell=bash
# Sourced by the boot-* scenarios (docs/boot.md): lets a guest boot its own
# initramfs and extra kernel parameters without changing the harness.
# A guest directory may hold initrd.img (used instead of the image's) and
# cmdline (one line, appended to the kernel command line); lab_vm_qemu's
# output (one word a line) is rewritten accordingly.
eval "boot_orig_$(declare -f lab_vm_qemu)"
lab_vm_qemu() {
    local dir=$LAB_RUN/$1 initrd="" cmdline=""
    [ -f "$dir/initrd.img" ] && initrd=$dir/initrd.img
    [ -f "$dir/cmdline" ] && cmdline=$(cat "$dir/cmdline")
    boot_orig_lab_vm_qemu "$@" | awk -v initrd="$initrd" -v extra="$cmdline" '
        prev == "-initrd" && initrd != "" { $0 = initrd }
        prev == "-append" && extra != "" { $0 = $0 " " extra }
        { print; prev = $0 }'
}
