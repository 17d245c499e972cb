# -*- coding: utf-8 -*-
# Copyright: paramount.cluster contributors
# Apache License 2.0 (see galaxy.yml)
"""What runs inside the controller namespace, next to moto: the seeding of the network and the reconciler."""

from __future__ import annotations

import ipaddress
import signal
import time

PORT_PROBE = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()"


def ec2_client(cloud):
    import boto3  # imported here: only the controller-namespace helpers need it

    return boto3.client(
        "ec2", endpoint_url=cloud.endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def seed(cloud):
    ec2 = ec2_client(cloud)
    subnet = cloud.state["subnet"]
    vpc_net = str(ipaddress.ip_network(subnet).supernet(new_prefix=16))
    vpc_id = ec2.create_vpc(CidrBlock=vpc_net, TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "paramount-sim"}]}])["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=subnet, TagSpecifications=[
        {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "paramount-sim"}]}])["Subnet"]["SubnetId"]
    group_id = ec2.create_security_group(GroupName="paramount-sim", Description="all TCP inside the cluster", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [{"GroupId": group_id}]}])
    public_key = (cloud.state_dir / "id_ed25519.pub").read_text()
    ec2.import_key_pair(KeyName="paramount-sim", PublicKeyMaterial=public_key.encode())
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {"vpc_id": vpc_id, "subnet_id": subnet_id, "security_group_id": group_id, "key_name": "paramount-sim", "image_id": image_id}


def reconcile_forever(cloud, interval=0.3, max_seconds=6 * 3600):
    """The reconciler process: bounded in time, stops on SIGTERM or when the cloud is taken down."""
    stop = {"flag": False}

    def _stop(_signum, _frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ec2 = ec2_client(cloud)
    deadline = time.monotonic() + max_seconds
    while not stop["flag"] and time.monotonic() < deadline and cloud.state_path.exists():
        try:
            created, deleted = cloud.reconcile_once(ec2)
            for instance_id in created:
                print("created host for %s" % instance_id, flush=True)
            for instance_id in deleted:
                print("deleted host of %s" % instance_id, flush=True)
        except Exception as exc:  # pylint: disable=broad-except
            # Keep following moto; the next pass retries. The error goes to reconciler.log.
            print("reconcile failed: %r" % (exc,), flush=True)
        time.sleep(interval)
