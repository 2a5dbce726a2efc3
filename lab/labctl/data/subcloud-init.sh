#!/bin/bash
# Anchor process of one lab subcloud. `lab up` starts it as
#   ip netns exec dcplab-<name> unshare --mount --uts --propagation private subcloud-init.sh ...
# so it runs in the subcloud's network namespace and in a fresh private mount + UTS namespace.
# It gives the subcloud its own filesystem view, starts sshd and the local registry, then stays
# alive holding the namespaces (lab/lab fault uses its pid with nsenter; lab down kills it).
set -euo pipefail
root=$1 address=$2 prefix=$3 bin_dir=$4

ip link set lo up
ip addr add "$address/$prefix" dev eth0
ip link set eth0 up
hostname controller-0

# /etc and /var/lib: overlays on the host's, so the subcloud has its own users (sysadmin),
# sudoers, hosts, certificate trust, build.info, platform dir, docker and registry storage.
mount -t overlay lab-etc -o "lowerdir=/etc,upperdir=$root/etc.upper,workdir=$root/etc.work" /etc
mount --bind "$root/build.info" /etc/build.info
mount --bind "$root/platform" /etc/platform
mount -t overlay lab-varlib \
  -o "lowerdir=/var/lib,upperdir=$root/varlib.upper,workdir=$root/varlib.work" /var/lib
mount --bind "$root/opt" /opt
mount --bind "$root/home" /home
mount --bind "$root/tmp" /tmp
mount --bind "$bin_dir" /usr/local/bin
mount -o remount,bind,ro /usr/local/bin
mount -t tmpfs -o mode=0755,size=64m lab-run /run
mkdir -p /run/sshd

docker-registry serve "$root/ctl/registry.yml" >>"$root/ctl/registry.log" 2>&1 &
echo $! >"$root/ctl/registry.pid"
/usr/sbin/sshd -D -e -f "$root/ctl/sshd_config" >>"$root/ctl/sshd.log" 2>&1 &
echo $! >"$root/ctl/sshd.pid"
echo $$ >"$root/ctl/init.pid"

# Stay alive; bash reaps the daemons if they exit (e.g. the registry-down fault).
sleep infinity &
anchor=$!
while kill -0 "$anchor" 2>/dev/null; do
  wait "$anchor" || true
done
