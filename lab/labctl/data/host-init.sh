#!/bin/bash
# Anchor process of one lab host (the system controller or a subcloud). `lab up` starts it as
#   ip netns exec dcplab-<name> unshare --mount --uts --propagation private host-init.sh ...
# so it runs in the host's network namespace and in a fresh private mount + UTS namespace.
# It gives the host its own filesystem view, starts its daemons (ctl/daemons), then stays alive
# holding the namespaces (lab/lab fault uses its pid with nsenter; lab down kills it).
set -euo pipefail
root=$1 address=$2 prefix=$3 run=$4 python_home=$5

ip link set lo up
ip addr add "$address/$prefix" dev eth0
ip link set eth0 up
hostname controller-0

# Paths of the machine the host keeps seeing whatever is mounted over their parents below (a
# private /tmp, /root, /home...): Python 3.9 (below /root), and on the system controller
# (ctl/keep) the controller's Python and this repository, for Ansible run on the SC itself and
# the lab's feed server. Bound aside first, moved back into place last.
keeps=("$python_home")
if [ -f "$root/ctl/keep" ]; then
  while read -r path; do [ -n "$path" ] && keeps+=("$path"); done <"$root/ctl/keep"
fi
for i in "${!keeps[@]}"; do
  mkdir -p "$root/ctl/keep-$i"
  mount --bind "${keeps[$i]}" "$root/ctl/keep-$i"
done

# /etc and /var: overlays on the machine's, so the host has its own users (sysadmin), sudoers,
# hosts, trust, its own /var/www/pages/feed, /var/lib/docker and registry storage, /var/log.
mount -t overlay lab-etc -o "lowerdir=/etc,upperdir=$root/etc.upper,workdir=$root/etc.work" /etc
mount --bind "$root/build.info" /etc/build.info
mount --bind "$root/platform" /etc/platform
mount -t overlay lab-var -o "lowerdir=/var,upperdir=$root/var.upper,workdir=$root/var.work" /var
mount --bind "$root/opt" /opt
mount --bind "$root/home" /home
mount --bind "$root/tmp" /tmp
# StarlingX's commands (software, system, fm, crictl, ...) and python3 = Python 3.9 on top of the
# machine's /usr/bin and /usr/sbin (read-only overlays: two lower layers, no upper).
mount -t overlay lab-usr-bin -o "lowerdir=$run/layers/usr-bin:/usr/bin" /usr/bin
mount -t overlay lab-usr-sbin -o "lowerdir=$run/layers/usr-sbin:/usr/sbin" /usr/sbin
mount -t tmpfs -o mode=0755,size=64m lab-run /run
mkdir -p /run/sshd
# Python 3.9 lives below /root (0700 on the machine): give the host its own /root, traversable,
# holding only the kept paths below it, so sysadmin can run python3 too.
mount -t tmpfs -o mode=0711,size=16m lab-root /root
for i in "${!keeps[@]}"; do
  mkdir -p "${keeps[$i]}"
  mount --move "$root/ctl/keep-$i" "${keeps[$i]}"
done
chmod 0755 /root/.pyenv /root/.pyenv/versions 2>/dev/null || true

# Host-specific mounts, one `mount` argument list a line (e.g. the SC's /opt/platform/iso binds).
if [ -f "$root/ctl/mounts" ]; then
  while read -r -a args; do
    [ ${#args[@]} -gt 0 ] || continue
    mkdir -p "${args[-1]}"
    mount "${args[@]}"
  done <"$root/ctl/mounts"
fi
# Host-specific set-up inside the namespaces (keyring, ...).
if [ -x "$root/ctl/setup" ]; then
  "$root/ctl/setup" >>"$root/ctl/setup.log" 2>&1
fi

# Daemons: `NAME COMMAND...` a line; pid in ctl/NAME.pid, output in ctl/NAME.log.
while read -r name command; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086 # the command line is split on purpose
  $command >>"$root/ctl/$name.log" 2>&1 &
  echo $! >"$root/ctl/$name.pid"
done <"$root/ctl/daemons"
echo $$ >"$root/ctl/init.pid"

# Stay alive; bash reaps the daemons if they exit (e.g. the registry-down fault).
sleep infinity &
anchor=$!
while kill -0 "$anchor" 2>/dev/null; do
  wait "$anchor" || true
done
