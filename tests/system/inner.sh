#!/bin/sh
# PID 1 of fresh pid, mount, uts, ipc and net namespaces (see machine.go):
# join the private cgroups, give the machine a private view of everything
# systemd writes, then become systemd. $1: the machine's directory (overlay
# upper dirs, the fake /sys/power/state); $2...: cgroup directories to join.
set -eu
D=$1
shift
for cg in "$@"; do echo 0 > "$cg/cgroup.procs"; done
mount --make-rprivate /
for d in etc var usr/local; do
	n=$(echo "$d" | tr / _)
	mkdir -p "$D/$n.upper" "$D/$n.work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$D/$n.upper,workdir=$D/$n.work" "/$d"
done
# logind suspends only when /sys/power/state offers a state; systemd-sleep
# writes "mem" into this plain file and returns.
mount --bind "$D/power-state" /sys/power/state
# A private /dev: journald's /dev/log and the rest stay in here.
mount -t tmpfs -o mode=755,nosuid tmpfs /dev
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
	name=${n%%:*}
	mm=${n#*:}
	mknod -m 666 "/dev/$name" c "${mm%:*}" "${mm#*:}"
done
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
# Fresh /run, /tmp (Debian's tmpfiles rule "D /tmp" must empty only this
# one) and /home.
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /home
# No global sysctl, no uevent: read-only.
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount -o remount,bind,ro /sys
ip link set lo up
exec env -i container=rouse-systest PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	/lib/systemd/systemd --system --unit=rouse-systest.target
