"""Bring the sandbox up: deploy the stack into a running emulator and record it in the state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pacs_kit import pki
from pacs_kit.program import Project
from pacs_kit.sandbox.deploy import Deployment, deploy
from pacs_kit.sandbox.emulate import Clients
from pacs_kit.sandbox.state import ResourceState, SandboxState

ADMIN_USER = "sandbox-admin"
# The emulator's administrator: what a deployer holds. Only the sandbox's own commands use it.
_ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "SandboxAdministrator", "Effect": "Allow", "Action": "*", "Resource": "*"}
    ],
}


EDGE_HOST = "edge.sandbox.pacs.internal"


def sandbox_config(
    project: Project, stack: str, endpoint: str, siem_url: str, certificate_arn: str | None
) -> dict[str, Any]:
    """The stack's config, wired to the emulator: its endpoint (the providers' target, as with
    the Pulumi CLI), its local SIEM sink and its edge certificate."""
    values = project.stack_config(stack)
    values[f"{project.name}:emulatorEndpoint"] = endpoint
    if values.get(f"{project.name}:siemDestination") in ("http", "splunk"):
        values[f"{project.name}:siemEndpointUrl"] = siem_url
    if certificate_arn and values.get(f"{project.name}:edgeCertificateArn"):
        values[f"{project.name}:edgeCertificateArn"] = certificate_arn
    return values


def import_edge_certificate(clients: Clients, region: str, tls_dir: Path) -> str:
    """A server certificate for the edge's HTTPS listener, imported into the emulator's ACM.

    The stack names an ACM certificate it does not create (edgeCertificateArn); in AWS it must
    exist before the listener, and so it must here: a throwaway CA issues one, whose key is
    deleted at once.
    """
    shutil.rmtree(tls_dir, ignore_errors=True)
    ca_file = pki.init_ca(tls_dir, common_name="cloud-pacs-kit sandbox edge CA")
    issued = pki.issue(tls_dir, "edge", "server", tls_dir, sans=[EDGE_HOST])
    (tls_dir / "ca.key").unlink()
    answer = clients.client("acm", region).import_certificate(
        Certificate=issued.certificate.read_bytes(),
        PrivateKey=issued.key.read_bytes(),
        CertificateChain=ca_file.read_bytes(),
    )
    return str(answer["CertificateArn"])


def create_admin(clients: Clients, region: str) -> tuple[str, str]:
    """An IAM user of the emulator allowed everything; its access key pair."""
    iam = clients.client("iam", region)
    iam.create_user(UserName=ADMIN_USER)
    iam.put_user_policy(
        UserName=ADMIN_USER, PolicyName="administrator", PolicyDocument=json.dumps(_ADMIN_POLICY)
    )
    key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def provision(
    project: Project, stack: str, endpoint: str, siem_url: str, work_dir: Path
) -> tuple[SandboxState, Deployment]:
    """Deploy ``stack`` into the emulator at ``endpoint``; the state to save and the deployment."""
    region = str(project.stack_config(stack).get("aws:region") or "us-east-1")
    clients = Clients(endpoint=endpoint)
    certificate = import_edge_certificate(clients, region, work_dir / "edge-tls")
    config = sandbox_config(project, stack, endpoint, siem_url, certificate)
    deployment = deploy(project, stack, clients, config=config)
    key_id, secret = create_admin(clients, region)
    urns = {(r.type, r.name): r.urn for r in deployment.run.resources}
    state = SandboxState(
        stack=stack,
        region=region,
        account_id=clients.client("sts", region).get_caller_identity()["Account"],
        endpoint=endpoint,
        siem_url=siem_url,
        admin_access_key_id=key_id,
        admin_secret_access_key=secret,
        outputs=deployment.run.outputs,
        resources=[
            ResourceState(
                urn=urns.get((o.type, o.name), ""),
                type=o.type,
                name=o.name,
                status=o.status,
                id=o.id,
                notes=list(o.notes),
                outputs=o.outputs,
            )
            for o in deployment.outcomes
        ],
        config=config,
    )
    return state, deployment
