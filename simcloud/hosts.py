# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""The machines of the simulated cloud: one network namespace per running instance, with sshd in its cgroups.

Each host is at its instance's private IP, hostname ip-a-b-c-d, with a private tmpfs /srv and the cloud's shared hosts
file as /etc/hosts. The reconciler makes ``hosts == running instances``: moto says what exists, the hosts follow.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

from .instance_types import SIM_TYPES
from .quotas import remove_instance_cgroups
from .system import SimCloudError, delete_netns, kill_pids, list_netns, run_command, wait_port


class NamespaceHosts:
    """The host side of a SimCloud (mixed into it: needs its state, names and cgroups)."""

    def _instances_dir(self):
        path = self.state_dir / "instances"
        path.mkdir(exist_ok=True)
        return path

    def _recorded_hosts(self):
        path = self.state_dir / "instances"
        if not path.is_dir():
            return []
        hosts = []
        for record in sorted(path.glob("*.json")):
            try:
                hosts.append(json.loads(record.read_text()))
            except (OSError, ValueError):
                continue
        return hosts

    def hosts(self):
        """The hosts that exist now, as recorded by the reconciler."""
        return self._recorded_hosts()

    def create_host(self, instance_id, private_ip, instance_type, name=None, public_ip=None, foreign=False):
        """Make the machine of one running instance. Returns its record.

        ``foreign``: the instance was launched outside the simulated subnet (no subnet asked for, as CLAP's legacy
        `ec2` plays do: moto then gives it an address of no subnet here); its host gets that address alone (/32),
        the controller routes it on its bridge and forwards between such hosts. A public IP is added to the host
        the same way, so the host answers on the address a client records. All of it inside the cloud's
        namespaces."""
        if instance_type not in SIM_TYPES:
            raise SimCloudError("instance %s has type %r, which the simulated cloud does not emulate (known: %s)"
                                % (instance_id, instance_type, ", ".join(sorted(SIM_TYPES))))
        address = ipaddress.ip_address(private_ip)
        subnet = ipaddress.ip_network(self.state["subnet"])
        foreign = foreign and address not in subnet
        if address not in subnet and not foreign:
            raise SimCloudError("instance %s has private IP %s outside the simulated subnet %s" % (instance_id, private_ip, subnet))
        public = ipaddress.ip_address(public_ip) if public_ip else None
        suffix = instance_id.split("-")[-1][-8:]
        namespace = "%s-i%s" % (self.prefix, suffix)
        veth = "%sv%s" % (self.prefix, suffix[-5:])
        hostname = "ip-" + str(address).replace(".", "-")
        host_dir = self._instances_dir() / instance_id
        host_dir.mkdir(exist_ok=True)
        if namespace in list_netns(namespace):
            delete_netns(namespace)  # a half-made host from an interrupted reconcile
        run_command(["ip", "netns", "add", namespace])
        run_command(["ip", "-n", namespace, "link", "set", "lo", "up"])
        run_command(["ip", "link", "add", veth, "netns", self.controller_ns, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        run_command(["ip", "-n", self.controller_ns, "link", "set", veth, "master", "br0", "up"])
        run_command(["ip", "-n", namespace, "addr", "add", "%s/%d" % (address, 32 if foreign else subnet.prefixlen), "dev", "eth0"])
        if public is not None:
            run_command(["ip", "-n", namespace, "addr", "add", "%s/32" % public, "dev", "eth0"])
        run_command(["ip", "-n", namespace, "link", "set", "eth0", "up"])
        if foreign:  # the gateway is on the bridge, not in the host's subnet; the controller routes between them
            run_command(["ip", "-n", namespace, "route", "add", str(subnet), "dev", "eth0"])
            run_command(["ip", "-n", self.controller_ns, "route", "replace", "%s/32" % address, "dev", "br0"])
            run_command(self.controller_argv(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        if public is not None:
            run_command(["ip", "-n", self.controller_ns, "route", "replace", "%s/32" % public, "dev", "br0"])
        run_command(["ip", "-n", namespace, "route", "add", "default", "via", self.state["gateway"]])
        config = host_dir / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress %s:22" % address,
        ] + (["ListenAddress %s:22" % public] if public is not None else []) + [
            "HostKey %s" % (self.state_dir / "ssh_host_ed25519_key"),
            "PidFile %s" % (host_dir / "sshd.pid"),
            "AuthorizedKeysFile %s" % (self.state_dir / "authorized_keys"),
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 64:30:128",
            "MaxSessions 64",
            "Subsystem sftp internal-sftp",
            "",
        ]))
        Path("/run/sshd").mkdir(exist_ok=True)
        script = "hostname %s && mount -t tmpfs -o size=%dm tmpfs /srv && mount --bind %s /etc/hosts && exec /usr/sbin/sshd -D -f %s -E %s" % (
            hostname, SIM_TYPES[instance_type].memory_mib * 2, self.hosts_file, config, host_dir / "sshd.log")
        log = open(host_dir / "host.log", "ab")  # pylint: disable=consider-using-with
        try:
            # unshare and sh exec into sshd, so this PID is sshd's; its children inherit the cgroups.
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                ["ip", "netns", "exec", namespace, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        for group in self._instance_cgroups(instance_type, instance_id):
            (group / "cgroup.procs").write_text(str(proc.pid))
        record = {
            "instance_id": instance_id, "private_ip": str(address), "instance_type": instance_type,
            "hostname": hostname, "name": name or "", "namespace": namespace, "veth": veth, "sshd_pid": proc.pid,
            "public_ip": str(public) if public is not None else "", "foreign": foreign,
        }
        (host_dir.with_suffix(".json")).write_text(json.dumps(record, indent=2))
        self._write_hosts_file()
        if not wait_port(str(address), 22, 10.0):
            raise SimCloudError("sshd of %s (%s) did not listen within 10 s; see %s" % (instance_id, address, host_dir))
        return record

    def delete_host(self, record):
        kill_pids([record.get("sshd_pid", 0)])
        delete_netns(record["namespace"])
        run_command(["ip", "-n", self.controller_ns, "link", "del", record["veth"]], check=False)
        for routed in ([record["public_ip"]] if record.get("public_ip") else []) + ([record["private_ip"]] if record.get("foreign") else []):
            run_command(["ip", "-n", self.controller_ns, "route", "del", routed + "/32"], check=False)
        remove_instance_cgroups(self.prefix, record["instance_type"], record["instance_id"])
        host_dir = self._instances_dir() / record["instance_id"]
        shutil.rmtree(host_dir, ignore_errors=True)
        host_dir.with_suffix(".json").unlink(missing_ok=True)
        self._write_hosts_file()

    def _write_hosts_file(self):
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        for host in self._recorded_hosts():
            names = [host["hostname"], host["hostname"] + ".ec2.internal"]
            if host.get("name") and host["name"] not in names:
                names.append(host["name"])
            lines.append("%s\t%s" % (host["private_ip"], " ".join(names)))
        # Rewrite in place: every host bind-mounts this inode as /etc/hosts.
        with open(self.hosts_file, "r+", encoding="ascii") as hosts:
            hosts.seek(0)
            hosts.write("\n".join(lines) + "\n")
            hosts.truncate()

    def reconcile_once(self, ec2):
        """Make hosts follow moto's running instances. Returns (created, deleted) instance ids."""
        wanted = {}
        paginator = ec2.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=[{"Name": "instance-state-name", "Values": ["running"]}]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    wanted[instance["InstanceId"]] = (instance.get("PrivateIpAddress"), instance["InstanceType"], tags.get("Name"),
                                                      instance.get("PublicIpAddress"), instance.get("SubnetId"))
        existing = {h["instance_id"]: h for h in self._recorded_hosts()}
        deleted = [i for i in existing if i not in wanted]
        for instance_id in deleted:
            self.delete_host(existing[instance_id])
        created = []
        errors = self.state_dir / "reconcile-errors.json"
        problems = {}
        for instance_id, (address, instance_type, name, public_ip, subnet_id) in wanted.items():
            if instance_id in existing:
                continue
            try:
                self.create_host(instance_id, address, instance_type, name, public_ip, subnet_id != self.state.get("subnet_id"))
                created.append(instance_id)
            except (SimCloudError, ValueError) as exc:
                problems[instance_id] = str(exc)
        errors.write_text(json.dumps(problems, indent=2))
        return created, deleted
