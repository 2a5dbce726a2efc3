"""labctl: the dcprestage lab (simulated StarlingX subclouds and a system controller).

Everything runs on this machine: one network + mount namespace per subcloud on a Linux bridge,
real sshd and docker-registry processes, and system-controller content under the run directory.
Entry point: lab/lab (see lab/README.md).
"""
