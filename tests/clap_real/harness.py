"""The real CLAP 0.2.3 (lmcad-unicamp/CLAP) driven from the tests, inside a simulated cloud's controller namespace.

CLAP is a test dependency that lives beside this project (never copied into it): its source folder is
$PARAMOUNT_CLAP_SOURCE, else ../shared/clap beside the checkout. scripts/setup-clap-env builds its own venv
(.build/clap-venv) and the old amazon.aws/community.aws collections its legacy `ec2` plays need
(.build/clap-collections). `clapp` runs as `<venv python> <source>/clapp`, with a CLAP home of its own under the
test's tmp folder, the collection's CLAP folder installed there by scripts/setup-clap, and templates for the sim
types added the way a user edits the installed copies."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path

from tests.playbook_env import REPO, ansible_settings

SOURCE_ENV = "PARAMOUNT_CLAP_SOURCE"
CLAP_VENV = REPO / ".build" / "clap-venv"
CLAP_COLLECTIONS = REPO / ".build" / "clap-collections"
SETUP_CLAP = REPO / "scripts" / "setup-clap"
SETUP_CLAP_ENV = REPO / "scripts" / "setup-clap-env"
REGISTER = Path(__file__).resolve().parent / "register_nodes.py"
SUCCESS = "Action {action} from role {role} was successfully performed!"
# boto 2 (CLAP's legacy `ec2` plays) signs with the service and region it reads from the endpoint's host name and
# talks plain HTTP on port 80 only: a name of this form for moto, known only in clapp's private /etc/hosts.
EC2_HOST = "ec2.us-east-1.paramount-sim"
MOTO_PORT = 80


def clap_source():
    """CLAP's source folder: $PARAMOUNT_CLAP_SOURCE, else ../shared/clap beside this checkout."""
    return Path(os.environ.get(SOURCE_ENV) or REPO.parent / "shared" / "clap").resolve()


def missing_clap():
    """Why the real CLAP cannot run here ("" when it can)."""
    source = clap_source()
    if not (source / "clapp").is_file() or not (source / "clap").is_dir():
        return ("real CLAP not found: no clapp in %s (put CLAP 0.2.3's source there or point %s at it)"
                % (source, SOURCE_ENV))
    return ""


def runs_here():
    """True when the real-CLAP tests run on this machine (CLAP's source and what a simulated cloud needs): the
    double's tests of the same paths then skip (the double stays only for what the real CLAP cannot do here)."""
    import simcloud  # pylint: disable=import-outside-toplevel

    return not missing_clap() and not simcloud.missing_requirements()


def build_clap_env():
    """Build (or reuse) CLAP's venv and old collections; returns the venv's Python."""
    proc = subprocess.run([str(SETUP_CLAP_ENV)], capture_output=True, text=True, timeout=900, check=False,
                          env=dict(os.environ, PARAMOUNT_CLAP_SOURCE=str(clap_source())))
    if proc.returncode != 0 or not (CLAP_VENV / "bin" / "python").exists():
        raise RuntimeError("scripts/setup-clap-env failed (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return CLAP_VENV / "bin" / "python"


LAUNCH = textwrap.dedent(
    """
    import json, os, sys
    import boto3

    state = json.load(open(os.environ["PARAMOUNT_SIM_STATE"]))
    ec2 = boto3.client("ec2")
    ids = []
    for instance_type in sys.argv[1:]:
        reply = ec2.run_instances(ImageId=state["image_id"], MinCount=1, MaxCount=1, InstanceType=instance_type,
                                  SubnetId=state["subnet_id"], KeyName=state["key_name"],
                                  SecurityGroupIds=[state["security_group_id"]])
        ids.append(reply["Instances"][0]["InstanceId"])
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    found = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    by_id = {i["InstanceId"]: i for r in found for i in r["Instances"]}
    print(json.dumps([{"instance_id": i, "private_ip": by_id[i]["PrivateIpAddress"],
                       "instance_type": by_id[i]["InstanceType"]} for i in ids]))
    """
)

DESCRIBE = textwrap.dedent(
    """
    import json
    import boto3

    ec2 = boto3.client("ec2")
    out = {}
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            for i in reservation["Instances"]:
                out[i["InstanceId"]] = {"state": i["State"]["Name"], "instance_type": i["InstanceType"],
                                        "private_ip": i.get("PrivateIpAddress"), "public_ip": i.get("PublicIpAddress"),
                                        "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])}}
    print(json.dumps(out))
    """
)

TERMINATE = textwrap.dedent(
    """
    import sys
    import boto3

    ec2 = boto3.client("ec2")
    ec2.terminate_instances(InstanceIds=sys.argv[1:])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=sys.argv[1:], WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    """
)


def moto_instances(cloud):
    """{instance id: {state, instance_type, private_ip, public_ip, tags}} as moto (the cloud's EC2) says."""
    proc = cloud.run([sys.executable, "-c", DESCRIBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def launch_hosts(cloud, instance_types, seconds=30.0):
    """Launch one instance per type with boto3 and wait until each one's host answers SSH. Returns their records."""
    proc = cloud.run([sys.executable, "-c", LAUNCH] + list(instance_types), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    launched = json.loads(proc.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + seconds
    wanted = {h["instance_id"] for h in launched}
    while time.monotonic() < deadline and not wanted <= {h["instance_id"] for h in cloud.hosts()}:
        time.sleep(0.2)
    missing = wanted - {h["instance_id"] for h in cloud.hosts()}
    assert not missing, "no sim host for %s within %.0f s" % (sorted(missing), seconds)
    return launched


def terminate_hosts(cloud, instance_ids, seconds=20.0):
    """Terminate in moto and wait until the reconciler removed their hosts."""
    if not instance_ids:
        return
    proc = cloud.run([sys.executable, "-c", TERMINATE] + list(instance_ids), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and set(instance_ids) & {h["instance_id"] for h in cloud.hosts()}:
        time.sleep(0.2)


class RealClap:
    """One real `clapp` with its own CLAP home (tmp_path/home/.clap), run in ``cloud``'s controller namespace."""

    def __init__(self, cloud, tmp_path, python):
        self.cloud = cloud
        self.python = Path(python)
        self.source = clap_source()
        self.clapp_path = self.source / "clapp"
        self.tmp = Path(tmp_path)
        self.home = self.tmp / "home"
        self.clap_path = self.home / ".clap"
        self.workdir = self.tmp / "work"
        self.launched = []  # instance ids this clapp's test launched (the fixture ends them)
        self.timings = []  # (command, seconds) of every clapp call, printed by the fixture
        for folder in (self.home, self.workdir, self.tmp / "ansible-tmp"):
            folder.mkdir(parents=True, exist_ok=True)
        # clapp's own /etc/hosts (a bind mount in a mount namespace of its own, inside the cloud's controller
        # namespace): moto's boto-2 name exists there and nowhere else on this machine
        self.hosts_file = self.tmp / "clapp-hosts"
        self.hosts_file.write_text("127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n" % EC2_HOST)
        (self.tmp / "boto.cfg").write_text("[Boto]\nis_secure = False\n")
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("ANSIBLE_", "CLAP", "PARAMOUNT_", "AWS_", "VIRTUAL_ENV", "PYTHON"))}
        self.env = dict(keep, **cloud.environment())
        self.env.update(ansible_settings(
            # Explicit: an inherited path that put a modern amazon.aws first would break CLAP's `ec2` again.
            CLAP_COLLECTIONS, config=None, local_temp=self.tmp / "ansible-tmp",
            # CLAP's ansible-runner starts the ansible-playbook it finds on PATH: the venv's, so CLAP's localhost
            # plays run with the venv's Python (boto 2, boto3) and never with the system one.
            bin_dir=self.python.parent, path=os.pathsep.join(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                                              "/usr/bin", "/sbin", "/bin"]),
            HOME=self.home, CLAP_PATH=self.clap_path,
            ANSIBLE_HOST_KEY_CHECKING="False",
            # the nodes' Python (discovery could pick a pyenv shim of this machine's root filesystem); CLAP's
            # localhost plays keep the implicit localhost's interpreter, the venv's Python of ansible-playbook
            ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            # the legacy ec2 modules' endpoint (boto 2 and boto3 alike); boto 2 over plain HTTP
            EC2_URL="http://%s:%d" % (EC2_HOST, cloud.state["moto_port"]),
            BOTO_CONFIG=self.tmp / "boto.cfg",
            # never write bytecode into CLAP's source folder (shared with other checkouts)
            PYTHONDONTWRITEBYTECODE="1",
        ))
        subprocess.run([str(SETUP_CLAP)], env=self.env, check=True, capture_output=True, text=True, timeout=60)
        self._write_sim_configs()

    # ---------------------------------------------------------------- configuration (what a user edits once)
    def _write_sim_configs(self):
        """Templates for the sim types, added to the installed configs; keys of the cloud in private/."""
        state = self.cloud.state
        private = self.clap_path / "private"
        for name, text in (("sim-access-key.txt", "testing\n"), ("sim-secret-key.txt", "testing\n"),
                           ("sim-key.pem", Path(self.cloud.private_key).read_text()),
                           ("sim-key.pub", Path(str(self.cloud.private_key) + ".pub").read_text())):
            (private / name).write_text(text)
            (private / name).chmod(0o400)
        configs = self.clap_path / "configs"
        with open(configs / "providers.yaml", "a", encoding="utf-8") as out:
            out.write("\n# the simulated cloud (tests)\nparamount-sim:\n  provider: aws\n  region: us-east-1\n"
                      "  access_keyfile: sim-access-key.txt\n  secret_access_keyfile: sim-secret-key.txt\n")
        with open(configs / "logins.yaml", "a", encoding="utf-8") as out:
            out.write("\n# the simulated cloud (tests)\nparamount-sim-root:\n  user: root\n  keypair_name: %s\n"
                      "  keypair_public_file: sim-key.pub\n  keypair_private_file: sim-key.pem\n" % state["key_name"])
        import simcloud  # pylint: disable=import-outside-toplevel
        with open(configs / "instances.yaml", "a", encoding="utf-8") as out:
            out.write("\n# the simulated cloud's types (tests); security_group: a name (CLAP's `ec2` group:)\n")
            for sim_type in sorted(simcloud.SIM_TYPES):
                out.write("%s:\n  provider: paramount-sim\n  login: paramount-sim-root\n  flavor: %s\n  image_id: %s\n"
                          "  security_group: paramount-sim\n" % (self.template(sim_type), sim_type, state["image_id"]))
        # The trainer: sim hosts share this machine's root filesystem, so this checkout's trainer with the
        # project's Python; each host's node folder is on its private /srv.
        (configs / "paramount-gan.yml").write_text("\n".join([
            "gan_trainer_install: existing",
            "gan_trainer_python: %s" % sys.executable,
            "gan_trainer_pythonpath: %s" % (REPO / "trainer"),
            "gan_node_root: /srv/paramount",
            "paramount_poll_seconds: 1",
            "paramount_trainer_preset: tiny",
            "paramount_train_epochs: 1  # train mode: one epoch is enough to see the whole job end",
            # CLAP's workflow is under test, not the ratings (benchmarks/probe_rating.py): no compute-only window,
            # whose steps run at the slowest share (a sim.small probe took 195 s with it)
            "paramount_probe_window_seconds: 0",
            "",
        ]))

    def stand_in(self, template, instance_type, **keys):
        """Make the installed template ``template`` start ``instance_type`` in the simulated cloud (what a user does
        when filling in the placeholders: provider, login, image, security group; here also the flavor)."""
        import yaml  # pylint: disable=import-outside-toplevel
        path = self.clap_path / "configs" / "instances.yaml"
        templates = yaml.safe_load(path.read_text())
        sim = templates[self.template(instance_type)]
        templates[template] = dict(sim, **keys)
        path.write_text(yaml.safe_dump(templates, sort_keys=False))

    @staticmethod
    def template(instance_type):
        from ansible_collections.paramount.cluster.plugins.plugin_utils.clap import cluster  # pylint: disable=import-outside-toplevel
        return cluster.clap_template_id(instance_type)

    # ---------------------------------------------------------------- running clapp
    def clapp(self, *args, timeout=300, cwd=None, check_rc=None, extra_env=None):
        """`clapp ARGS` in the cloud's controller namespace, from ``cwd`` (default the work folder)."""
        cwd = str(cwd or self.workdir)
        env = dict(self.env, PWD=cwd, **(extra_env or {}))  # what a shell sets: the gan playbooks put results under $PWD/results
        argv = [str(self.python), str(self.clapp_path)] + [str(a) for a in args]
        start = time.monotonic()
        proc = subprocess.run(self.controller_argv(argv), env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        self.timings.append((" ".join(str(a) for a in args[:5]), time.monotonic() - start))
        if check_rc is not None:
            assert proc.returncode == check_rc, "clapp %s: rc %d\n%s\n%s" % (
                " ".join(map(str, args)), proc.returncode, proc.stdout[-4000:], proc.stderr[-3000:])
        return proc

    def controller_argv(self, argv):
        """``argv`` in the cloud's controller namespace with clapp's private /etc/hosts."""
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        return self.cloud.controller_argv(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                           str(self.hosts_file)] + list(argv))

    def action(self, role, action, *args, timeout=400):
        """`clapp role action ROLE -a ACTION ARGS`, asserting CLAP's success line (clapp exits 0 on failure too)."""
        proc = self.clapp("role", "action", role, "-a", action, *args, timeout=timeout, check_rc=0)
        assert SUCCESS.format(action=action, role=role) in proc.stdout, "clapp role action %s -a %s failed:\n%s\n%s" % (
            role, action, proc.stdout[-6000:], proc.stderr[-3000:])
        return proc

    def start_hosts(self, instance_types):
        """Launch sim instances (boto3, as a cloud console would) and register them in CLAP through its API, the way
        `clapp node start` leaves started nodes. Returns [(node id, launched record)]."""
        launched = launch_hosts(self.cloud, instance_types)
        self.launched += [h["instance_id"] for h in launched]
        return list(zip(self.register(launched), launched))

    def register(self, hosts):
        """Put launched sim hosts into CLAP's node repository through CLAP's own API; returns their node ids."""
        spec = [{"template": self.template(h["instance_type"]), "instance_id": h["instance_id"],
                 "private_ip": h["private_ip"]} for h in hosts]
        proc = subprocess.run([str(self.python), str(REGISTER), str(self.source), "add", json.dumps(spec)], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def unregister(self, node_ids):
        """Remove node records through CLAP's API (NodeManager.remove_node)."""
        if node_ids:
            proc = subprocess.run([str(self.python), str(REGISTER), str(self.source), "remove"] + list(node_ids),
                                  env=self.env, capture_output=True, text=True, timeout=60, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr

    def nodes(self):
        """CLAP's node repository as stored (SELECT key, value FROM "node")."""
        db = self.clap_path / "storage" / "nodes.db"
        if not db.exists():
            return {}
        with closing(sqlite3.connect(str(db))) as conn:
            try:
                return {k: json.loads(v) for k, v in conn.execute('SELECT key, value FROM "node"')}
            except sqlite3.OperationalError:  # no table yet
                return {}
