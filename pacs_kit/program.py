"""Run the real Pulumi program offline under Pulumi's mock runtime: no CLI, no engine, no AWS.

One runner for every offline use: ``pacs-kit plan`` records what ``pulumi up`` would create, the
policy checks read the same records, and the sandbox passes its own :class:`pulumi.runtime.Mocks`
that create each resource in an emulator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import runpy
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import asset
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

MOCK_ACCOUNT_ID = "123456789012"


class ProjectError(RuntimeError):
    """The project or stack files cannot be read (missing file, bad YAML, undecryptable value)."""


@dataclass(frozen=True)
class Project:
    """A Pulumi project on disk: its name, program directory and project-level config defaults."""

    root: Path
    name: str
    main: Path
    defaults: Mapping[str, Any]

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The nearest directory at or above ``start`` holding ``Pulumi.yaml``."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / "Pulumi.yaml").is_file():
                return cls.load(candidate)
        raise ProjectError(f"no Pulumi.yaml in {here} or any parent directory")

    @classmethod
    def load(cls, root: Path) -> Project:
        data = _read_yaml(root / "Pulumi.yaml")
        name = data.get("name")
        if not isinstance(name, str):
            raise ProjectError(f"{root / 'Pulumi.yaml'}: 'name' is required")
        defaults: dict[str, Any] = {}
        for key, spec in (data.get("config") or {}).items():
            qualified = key if ":" in key else f"{name}:{key}"
            if isinstance(spec, dict) and ("type" in spec or "default" in spec):
                if "default" in spec:
                    defaults[qualified] = spec["default"]
            elif isinstance(spec, dict) and "value" in spec:
                defaults[qualified] = spec["value"]
            else:
                defaults[qualified] = spec
        return cls(root=root, name=name, main=root / data.get("main", "."), defaults=defaults)

    def stack_config(self, stack: str) -> dict[str, Any]:
        """Project defaults overlaid with ``Pulumi.<stack>.yaml``, keys fully qualified."""
        path = self.root / f"Pulumi.{stack}.yaml"
        if not path.is_file():
            raise ProjectError(f"no stack config file {path.name} in {self.root}")
        values = dict(self.defaults)
        for key, value in (_read_yaml(path).get("config") or {}).items():
            qualified = key if ":" in key else f"{self.name}:{key}"
            if isinstance(value, dict) and set(value) == {"secure"}:
                raise ProjectError(
                    f"{path.name}: {qualified} is an encrypted secret, which cannot be decrypted "
                    "offline; set a plain placeholder in a copy of the stack file"
                )
            values[qualified] = value
        return values


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ProjectError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: expected a mapping at the top level")
    return data


def _as_config_string(value: Any) -> str:
    """Pulumi hands every config value to the program as a string; structures as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


@dataclass
class Registration:
    """One resource as the program declared it."""

    urn: str
    type: str
    name: str
    parent: str
    provider: str
    custom: bool
    inputs: dict[str, Any]
    id: str | None = None
    protect: bool = False
    # What the mocks answered (inputs plus derived ids, ARNs, names), and the URNs it waits for.
    outputs: dict[str, Any] = field(default_factory=dict)
    dependencies: list[str] = field(default_factory=list)
    # Input property -> URNs its value was computed from, as the engine hands policies.
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ProgramRun:
    """What one run of the program declared, in registration order, and its stack outputs."""

    project: str
    stack: str
    resources: list[Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_token]


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's inputs, parent and provider.

    The SDK's mock URNs qualify a type with its parent's type only; the engine qualifies it with
    the whole chain of component types. Records carry the engine's form, as ``pulumi up`` shows.
    """

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self._lock = threading.Lock()
        self._real: dict[str, tuple[str, str]] = {}  # mock URN -> (engine URN, qualified type)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        outputs = rpc.deserialize_properties(response.object)
        with self._lock:
            parent_urn, parent_type = self._real.get(request.parent, ("", ""))
            qualified = f"{parent_type}${request.type}" if parent_type else request.type
            urn = f"urn:pulumi:{request_stack(response.urn)}::{qualified}::{request.name}"
            self._real[response.urn] = (urn, qualified)
            provider_urn = (request.provider or "").rsplit("::", 1)[0]
            self.registrations.append(
                Registration(
                    urn=urn,
                    type=request.type,
                    name=request.name,
                    parent=parent_urn,
                    provider=self._real.get(provider_urn, (provider_urn, ""))[0],
                    custom=bool(request.custom),
                    inputs=_plain(inputs),
                    id=response.id or None,
                    protect=bool(request.protect),
                    outputs=_plain(outputs),
                    dependencies=sorted(
                        self._real.get(d, (d, ""))[0] for d in request.dependencies
                    ),
                    property_dependencies={
                        key: sorted(self._real.get(u, (u, ""))[0] for u in deps.urns)
                        for key, deps in sorted(request.propertyDependencies.items())
                        if deps.urns
                    },
                )
            )
        return response


def request_stack(mock_urn: str) -> str:
    """``<stack>::<project>`` of a URN."""
    return "::".join(mock_urn.split("::")[0:2]).removeprefix("urn:pulumi:")


def _plain(value: Any) -> Any:
    """Inputs as JSON-ready values (the mock runtime hands back dicts, lists and scalars)."""
    # Assets and archives by what they name, so a plan is the same from one run to the next.
    if isinstance(value, asset.AssetArchive):
        return {"assetArchive": {k: _plain(v) for k, v in sorted(value.assets.items())}}
    if isinstance(value, asset.FileAsset):
        return {"fileAsset": str(value.path)}
    if isinstance(value, asset.FileArchive):
        return {"fileArchive": str(value.path)}
    if isinstance(value, asset.StringAsset):
        return {"stringAsset": value.text}
    if isinstance(value, asset.RemoteAsset):
        return {"remoteAsset": value.uri}
    if isinstance(value, asset.RemoteArchive):
        return {"remoteArchive": value.uri}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# Resources whose id is their name, and the ARN AWS gives them.
_NAMED_ARNS: dict[str, str] = {
    "aws:iam/role:Role": "arn:aws:iam::{acct}:role/{name}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{acct}:log-group:{name}",
    "aws:backup/vault:Vault": "arn:aws:backup:{region}:{acct}:backup-vault:{name}",
    "aws:dynamodb/table:Table": "arn:aws:dynamodb:{region}:{acct}:table/{name}",
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{acct}:function:{name}",
    "aws:cloudwatch/eventRule:EventRule": "arn:aws:events:{region}:{acct}:rule/{name}",
    "aws:cloudtrail/trail:Trail": "arn:aws:cloudtrail:{region}:{acct}:trail/{name}",
}


# Elastic Load Balancing's log-delivery account of a region, as aws.elb.get_service_account answers.
_ELB_ACCOUNTS: dict[str, str] = {"us-east-1": "127311923021", "us-west-2": "797873946194"}


def _mock_pem(label: str) -> str:
    """A PEM-shaped stand-in for a certificate the offline runner cannot fetch."""
    body = hashlib.sha256(label.encode()).hexdigest()
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


class PlanMocks(pulumi_mocks.Mocks):
    """Answers like AWS would, deterministically: ids, ARNs and names derived from the inputs."""

    def __init__(self, region: str, account_id: str = MOCK_ACCOUNT_ID) -> None:
        self.region = region
        self.account_id = account_id
        self._provider_regions: dict[str, str] = {}

    def region_of(self, provider_ref: str | None) -> str:
        """Region of the provider a resource uses; a reference is ``<provider urn>::<id>``."""
        parts = (provider_ref or "").rsplit("::", 2)
        name = parts[-2] if len(parts) == 3 else ""
        return self._provider_regions.get(name, self.region)

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        region = self.region_of(args.provider)
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": self.account_id,
                "arn": f"arn:aws:iam::{self.account_id}:user/plan",
                "userId": "AIDAPLAN",
                "id": self.account_id,
            }
        if args.token == "aws:index/getPartition:getPartition":
            return {
                "partition": "aws",
                "dnsSuffix": "amazonaws.com",
                "reverseDnsPrefix": "com.amazonaws",
                "id": "aws",
            }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{region}{s}" for s in "abc"]
            return {
                "names": names,
                "zoneIds": [f"use1-az{i}" for i in range(1, 4)],
                "id": region,
            }
        if args.token == "aws:elb/getServiceAccount:getServiceAccount":
            elb_account = _ELB_ACCOUNTS.get(region, "000000000000")
            return {"arn": f"arn:aws:iam::{elb_account}:root", "id": elb_account}
        if args.token == "aws:acmpca/getCertificateAuthority:getCertificateAuthority":
            arn = str(args.args.get("arn"))
            return {
                "arn": arn,
                "id": arn,
                "certificate": _mock_pem(f"certificate of {arn}"),
                "certificateChain": _mock_pem(f"root of {arn}"),
                "status": "ACTIVE",
                "type": "SUBORDINATE",
                "usageMode": "GENERAL_PURPOSE",
            }
        raise NotImplementedError(f"the offline runner has no answer for invoke {args.token}")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        digest = hashlib.sha256(f"{args.typ}::{args.name}".encode()).hexdigest()
        if args.typ == "pulumi:providers:aws":
            region = str(inputs.get("region") or self.region)
            self._provider_regions[args.name] = region
            return f"{args.name}-provider", inputs
        region = self.region_of(args.provider)
        acct = self.account_id
        state: dict[str, Any] = dict(inputs)
        resource_id = f"{args.name}-{digest[:8]}"
        typ = args.typ
        if typ == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or resource_id
            resource_id = bucket
            state.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}", region=region)
        elif typ == "aws:kms/key:Key":
            resource_id = (
                f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
            )
            state.update(keyId=resource_id, arn=f"arn:aws:kms:{region}:{acct}:key/{resource_id}")
        elif typ in _NAMED_ARNS:
            name = inputs.get("name") or resource_id
            resource_id = name
            state.update(
                name=name, arn=_NAMED_ARNS[typ].format(region=region, acct=acct, name=name)
            )
        elif typ == "aws:ec2/vpc:Vpc":
            resource_id = f"vpc-{digest[:17]}"
            state.update(
                defaultNetworkAclId=f"acl-{digest[:17]}",
                defaultSecurityGroupId=f"sg-{digest[:17]}",
                arn=f"arn:aws:ec2:{region}:{acct}:vpc/{resource_id}",
            )
        elif typ == "aws:ec2/vpcEndpoint:VpcEndpoint":
            resource_id = f"vpce-{digest[:17]}"
            if inputs.get("vpcEndpointType") == "Gateway":
                state.update(prefixListId=f"pl-{digest[:8]}")
        elif typ == "aws:sqs/queue:Queue":
            queue = inputs.get("name") or resource_id
            resource_id = f"https://sqs.{region}.amazonaws.com/{acct}/{queue}"
            state.update(name=queue, url=resource_id, arn=f"arn:aws:sqs:{region}:{acct}:{queue}")
        elif typ == "aws:lambda/layerVersion:LayerVersion":
            layer = f"arn:aws:lambda:{region}:{acct}:layer:{inputs.get('layerName')}"
            resource_id = f"{layer}:1"
            state.update(arn=resource_id, layerArn=layer, version="1")
        elif typ == "aws:lambda/functionUrl:FunctionUrl":
            # Lambda answers a function URL with a random 32-character id under lambda-url.
            url_id = digest[:32]
            resource_id = str(inputs.get("functionName"))
            state.update(
                urlId=url_id,
                functionUrl=f"https://{url_id}.lambda-url.{region}.on.aws/",
                functionArn=f"arn:aws:lambda:{region}:{acct}:function:{resource_id}",
            )
        elif typ == "aws:sns/topic:Topic":
            topic = inputs.get("name") or resource_id
            resource_id = f"arn:aws:sns:{region}:{acct}:{topic}"
            state.update(name=topic, arn=resource_id)
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            resource_id = f"sg-{digest[:17]}"
            state.update(arn=f"arn:aws:ec2:{region}:{acct}:security-group/{resource_id}")
        elif typ in (
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
            "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        ):
            resource_id = f"sgr-{digest[:17]}"
            state.update(securityGroupRuleId=resource_id)
        elif typ.startswith("aws:lb/"):
            resource_id = _load_balancing(typ, inputs, state, region, acct, digest)
        elif typ == "aws:ecr/repository:Repository":
            resource_id = str(inputs.get("name"))
            state.update(
                arn=f"arn:aws:ecr:{region}:{acct}:repository/{resource_id}",
                registryId=acct,
                repositoryUrl=f"{acct}.dkr.ecr.{region}.amazonaws.com/{resource_id}",
            )
        elif typ == "aws:ecs/cluster:Cluster":
            resource_id = f"arn:aws:ecs:{region}:{acct}:cluster/{inputs.get('name')}"
            state.update(arn=resource_id)
        elif typ == "aws:ecs/taskDefinition:TaskDefinition":
            family = f"arn:aws:ecs:{region}:{acct}:task-definition/{inputs.get('family')}"
            resource_id = str(inputs.get("family"))
            state.update(arn=f"{family}:1", arnWithoutRevision=family, revision=1)
        elif typ == "aws:ecs/service:Service":
            cluster = str(inputs.get("cluster", "")).rsplit("/", 1)[-1]
            resource_id = f"arn:aws:ecs:{region}:{acct}:service/{cluster}/{inputs.get('name')}"
        elif typ == "aws:secretsmanager/secret:Secret":
            # Secrets Manager appends six random characters to every secret's ARN.
            resource_id = (
                f"arn:aws:secretsmanager:{region}:{acct}:secret:{inputs.get('name')}-{digest[:6]}"
            )
            state.update(arn=resource_id)
        elif typ == "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream":
            resource_id = f"arn:aws:firehose:{region}:{acct}:deliverystream/{inputs.get('name')}"
            state.update(arn=resource_id)
        elif typ == "aws:guardduty/detector:Detector":
            resource_id = digest[:32]
            state.update(arn=f"arn:aws:guardduty:{region}:{acct}:detector/{resource_id}")
        elif typ == "aws:iam/policy:Policy":
            # IAM is global: a managed policy's ARN has no region, and its id is the ARN.
            resource_id = f"arn:aws:iam::{acct}:policy/{inputs.get('name') or resource_id}"
            state.update(arn=resource_id, name=inputs.get("name"), policyId=f"ANPA{digest[:17]}")
        elif typ == "aws:accessanalyzer/analyzer:Analyzer":
            resource_id = str(inputs.get("analyzerName"))
            state.update(arn=f"arn:aws:access-analyzer:{region}:{acct}:analyzer/{resource_id}")
        elif typ == "aws:s3/bucketObjectv2:BucketObjectv2":
            content = str(inputs.get("content", ""))
            resource_id = str(inputs.get("key"))
            state.update(
                etag=hashlib.md5(content.encode(), usedforsecurity=False).hexdigest(),
                versionId=hashlib.sha256(content.encode()).hexdigest()[:32],
            )
        else:
            service = typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{region}:{acct}:{args.name}")
        return resource_id, state


def _load_balancing(
    typ: str, inputs: dict[str, Any], state: dict[str, Any], region: str, acct: str, digest: str
) -> str:
    """Ids, ARNs and DNS names of Elastic Load Balancing resources (the id is the ARN)."""
    prefix = f"arn:aws:elasticloadbalancing:{region}:{acct}"
    name = str(inputs.get("name") or "")
    if typ == "aws:lb/loadBalancer:LoadBalancer":
        kind = "net" if inputs.get("loadBalancerType") == "network" else "app"
        suffix = f"{kind}/{name}/{digest[:16]}"
        dns = f"{name}-{digest[:10]}.elb.{region}.amazonaws.com"
        if kind == "app":
            dns = f"{name}-{int(digest[:8], 16)}.{region}.elb.amazonaws.com"
            if inputs.get("internal"):
                dns = f"internal-{dns}"
        state.update(arn=f"{prefix}:loadbalancer/{suffix}", arnSuffix=suffix, dnsName=dns)
    elif typ == "aws:lb/targetGroup:TargetGroup":
        suffix = f"targetgroup/{name}/{digest[:16]}"
        state.update(arn=f"{prefix}:{suffix}", arnSuffix=suffix)
    elif typ == "aws:lb/listener:Listener":
        balancer = str(inputs.get("loadBalancerArn", "")).split(":loadbalancer/", 1)[-1]
        state.update(arn=f"{prefix}:listener/{balancer}/{digest[:16]}")
    elif typ == "aws:lb/trustStore:TrustStore":
        state.update(arn=f"{prefix}:truststore/{name}/{digest[:16]}")
    elif typ == "aws:lb/trustStoreRevocation:TrustStoreRevocation":
        state.update(revocationId=1)
        return f"{inputs.get('trustStoreArn')},1"
    return str(state.get("arn") or f"{prefix}:{digest[:16]}")


def run_program(
    project: Project,
    stack: str,
    mocks: pulumi_mocks.Mocks | None = None,
    config: Mapping[str, Any] | None = None,
) -> ProgramRun:
    """Run ``project``'s program for ``stack`` under mocks and return what it declared.

    ``config`` (fully-qualified keys) replaces the stack file, for tests and snapshots. Errors the
    program raises (a ``ConfigError`` among them) propagate unchanged.
    """
    values = dict(config) if config is not None else project.stack_config(stack)
    region = str(values.get("aws:region") or "")
    if mocks is None:
        mocks = PlanMocks(region=region or "us-east-1")
    monitor = _RecordingMonitor(mocks)
    warnings = _WarningCollector()
    logger = logging.getLogger(f"pacs_kit.program.{stack}")
    logger.propagate = False
    logger.handlers[:] = [warnings]

    settings.reset_options(project=project.name, stack=stack, preview=False)
    pulumi_mocks.set_mocks(
        mocks, project=project.name, stack=stack, preview=False, monitor=monitor, logger=logger
    )
    set_all_config({k: _as_config_string(v) for k, v in values.items()})
    program = project.main / "__main__.py"

    def body() -> None:
        runpy.run_path(str(program), run_name="__main__")

    _sync_await(run_pulumi_func(body))
    root = settings.get_root_resource()
    outputs: dict[str, Any] = {}
    if root is not None:
        from pulumi import Output

        stack_outputs = getattr(root, "outputs", {})
        outputs = _sync_await(Output.from_input(stack_outputs).future()) or {}  # type: ignore[arg-type]
    return ProgramRun(
        project=project.name,
        stack=stack,
        resources=_tree_order(monitor.registrations),
        outputs=_plain(outputs),
        warnings=warnings.messages,
    )


def plan_document(run: ProgramRun, dependencies: bool = False) -> dict[str, Any]:
    """The ``pacs-kit plan --json`` document: exactly ``{"resources": [{urn, type, name, props}]}``.

    ``dependencies`` (``--dependencies``) adds ``propertyDependencies`` to the resources that have
    them: input property -> URNs of the resources its value came from, as the engine gives policies.
    """
    resources: list[dict[str, Any]] = []
    for r in run.resources:
        entry: dict[str, Any] = {"urn": r.urn, "type": r.type, "name": r.name, "props": r.inputs}
        if dependencies and r.property_dependencies:
            entry["propertyDependencies"] = r.property_dependencies
        resources.append(entry)
    return {"resources": resources}


def short_type(token: str) -> str:
    """``aws:s3/bucketPolicy:BucketPolicy`` -> ``aws:s3:BucketPolicy``."""
    package, module, name = ([*token.split(":"), "", ""])[:3]
    return f"{package}:{module.split('/')[0]}:{name}" if name else token


def _tree_order(registrations: list[Registration]) -> list[Registration]:
    """Parents before children, siblings by type then name: stable output from a threaded run."""
    children: dict[str, list[Registration]] = {}
    for r in registrations:
        children.setdefault(r.parent, []).append(r)
    ordered: list[Registration] = []

    def walk(parent: str) -> None:
        for r in sorted(children.get(parent, []), key=lambda r: (r.custom, r.type, r.name)):
            ordered.append(r)
            walk(r.urn)

    walk("")
    return ordered
