"""The sandbox's Lambda service: runs the stack's real handlers in-process against the emulator.

moto stores functions, event source mappings and event-invoke configs but can only run code in
Docker (none here), so this module does what AWS Lambda does for the stack's functions, reading
every setting back from the emulator (never from the Pulumi inputs):

- assumes each function's execution role (``sts:AssumeRole`` as the Lambda service, i.e. the
  sandbox administrator), so with IAM enforcement on every call of the handler *and* of the SQS
  poller is checked against that role's policies;
- polls each enabled SQS event source mapping with the role's credentials, builds the SQS event as
  Lambda does, honours ``ReportBatchItemFailures`` and deletes what succeeded;
- fires EventBridge schedules whose targets are the stack's functions, with the async retry and
  on-failure destination of the function's event-invoke config;
- captures what the handler writes and puts it, with Lambda's platform lines, into the function's
  CloudWatch log group with the role's credentials (the stack ships those groups to the SIEM).

Time is compressed, never waited: the batching window is not waited for, and a failed message is
made visible again at once (``ChangeMessageVisibility`` 0, by the sandbox administrator — not an
action Lambda performs) instead of after the queue's visibility timeout; SQS's own redrive policy
then moves a poison message to the DLQ on the receive after ``maxReceiveCount``.

moto gaps this module works around (verified with moto 5.2.5, server mode):
- moto runs its own poller for an enabled SQS mapping on every ``SendMessage``: it receives the
  batch (incrementing ``ApproximateReceiveCount``), fails to start Docker and makes the messages
  visible again — so messages would reach the DLQ without any handler seeing them. The emulator
  runs with :func:`pacs_kit.sandbox.shims.sqs_mappings_are_polled_by_the_sandbox`.
- ``GetFunctionConfiguration`` omits ``LoggingConfig``: the log group and format are then taken
  from the function's state outputs.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

from pacs_kit.sandbox.emulate import Clients
from pacs_kit.sandbox.state import ResourceState, SandboxState

SHIM_POLICY_NAME = "sandbox-moto-resource-star-shim"
# Services moto authorises only against resource "*" (OFFLINE-FACTS: IAM enforcement).
UNENFORCED_BY_MOTO = ("kms:", "dynamodb:", "logs:")
SHIM_REASON = (
    "moto authorises KMS, DynamoDB and CloudWatch Logs only on resource '*': the role's own "
    "actions of those services are granted again on '*' (ARN scoping is proven on the plan)"
)

FUNCTION_TYPE = "aws:lambda/function:Function"
EVENT_INVOKE_CONFIG_TYPE = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
ESM_TYPE = "aws:lambda/eventSourceMapping:EventSourceMapping"
SQS_RECEIVE_MAX = 10  # ReceiveMessage returns at most 10 messages
DEFAULT_ASYNC_RETRIES = 2  # Lambda's default for asynchronous invocations
_LEVELS = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "FATAL": 50}

ClientShim = Callable[[Any], None]


class LambdaRuntimeError(RuntimeError):
    """The emulator holds something the sandbox's Lambda service cannot run (ids only)."""


# --- the moto IAM shim ----------------------------------------------------------------------------


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    return [statements] if isinstance(statements, dict) else list(statements)


def _role_documents(iam: Any, role_name: str) -> Iterator[Any]:
    """The role's inline and attached policy documents, as the emulator holds them."""
    for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
        for name in page["PolicyNames"]:
            if name != SHIM_POLICY_NAME:
                yield iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
    for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
        for attached in page["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            yield iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"][
                "Document"
            ]


def grant_moto_resource_star_shim(iam_client: Any, role_name: str) -> None:
    """Re-grant the role's own KMS and DynamoDB actions on ``"*"``: a named moto shim.

    The verified moto gap (moto 5.2.5, see OFFLINE-FACTS): with IAM enforcement on, moto authorises
    KMS and DynamoDB requests only against resource ``"*"``, so the ARN-scoped grants the stack
    generates (one key, one table) are denied although AWS would allow them. This reads the role's
    inline and attached policies back from the emulator, collects the ``kms:``/``dynamodb:``
    actions of its Allow statements and puts the inline policy ``sandbox-moto-resource-star-shim``
    allowing exactly those actions on ``"*"``. Nothing else is widened: no new action, no other
    service; S3 and SQS keep being enforced by ARN. The real ARN scoping is asserted on the
    generated documents by tests/infra. A role with no such action gets no shim.
    """
    actions: set[str] = set()
    for document in _role_documents(iam_client, role_name):
        for statement in _statements(document):
            if statement.get("Effect") != "Allow":
                continue
            granted = statement.get("Action", [])
            for action in [granted] if isinstance(granted, str) else granted:
                if str(action).lower().startswith(UNENFORCED_BY_MOTO):
                    actions.add(str(action))
    if not actions:
        return
    shim = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MotoAuthorisesTheseOnlyOnStar",
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": "*",
            }
        ],
    }
    iam_client.put_role_policy(
        RoleName=role_name, PolicyName=SHIM_POLICY_NAME, PolicyDocument=json.dumps(shim)
    )


# --- invocation records --------------------------------------------------------------------------


@dataclass
class Invocation:
    """One invocation of a function by the sandbox's Lambda service (ids and counts only)."""

    function: str
    trigger: str  # "sqs" | "schedule"
    request_id: str
    records: int = 0
    failed_message_ids: list[str] = field(default_factory=list)
    result: Any = None
    error_type: str | None = None  # the exception class when the handler raised
    duration_ms: float = 0.0
    log_lines: list[str] = field(default_factory=list)
    attempt: int = 1


@dataclass
class LambdaContext:
    """What the Python runtime hands a handler as ``context``."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_ms: float
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))


# --- output capture ------------------------------------------------------------------------------


class _Tap(io.TextIOBase):
    """A text stream collecting what an invocation writes (stdout, stderr, logging handlers)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._parts.append(text)
        return len(text)

    def lines(self) -> list[str]:
        with self._lock:
            text = "".join(self._parts)
        return [line for line in text.splitlines() if line.strip()]


class _Redirect(io.TextIOBase):
    """Stands in for a stream during an invocation: the invoking thread's writes go to the tap.

    Other threads (the in-process emulator's request log, for one) keep writing to the original.
    """

    def __init__(self, tap: _Tap, original: Any) -> None:
        super().__init__()
        self.tap = tap
        self.original = original
        self.owner = threading.get_ident()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if threading.get_ident() == self.owner:
            return self.tap.write(text)
        return int(self.original.write(text))

    def flush(self) -> None:
        if threading.get_ident() != self.owner and hasattr(self.original, "flush"):
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


@contextlib.contextmanager
def _capture(tap: _Tap) -> Iterator[None]:
    """Send what the invocation writes to stdout, stderr or any stdlib stream handler to ``tap``.

    Powertools' Logger writes to the ``sys.stdout`` it saw when its stdlib logger was first
    configured, and a later Logger of the same service reuses that handler: redirecting
    ``sys.stdout`` alone would lose every invocation after the first (or all of them when the
    logger was configured before the sandbox, possibly on a ``sys.stdout`` that has since been
    replaced). So every existing stream handler is re-pointed for the invocation (only the
    invoking thread's writes reach the tap) and restored afterwards, and handlers created during
    it (bound to the redirect of ``sys.stdout``) are pointed at the real stream afterwards.
    """
    saved_out, saved_err = sys.stdout, sys.stderr
    for handler in _stream_handlers():
        if not _fixed_stream(handler) and not isinstance(handler.stream, _Redirect):
            # Assigned, not setStream(): that flushes the old stream, which may be closed.
            handler.stream = _Redirect(tap, handler.stream)
    sys.stdout, sys.stderr = _Redirect(tap, saved_out), _Redirect(tap, saved_err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved_out, saved_err
        for handler in _stream_handlers():
            if not _fixed_stream(handler) and isinstance(handler.stream, _Redirect):
                handler.stream = handler.stream.original


def _fixed_stream(handler: logging.StreamHandler[Any]) -> bool:
    """logging's last-resort handler always writes to the current ``sys.stderr``."""
    return isinstance(getattr(type(handler), "stream", None), property)


def _stream_handlers() -> list[logging.StreamHandler[Any]]:
    loggers: list[Any] = [logging.getLogger()]
    loggers += [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return [
        h
        for lg in loggers
        for h in lg.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` is exactly ``values`` inside; the previous environment is restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _client_shims(shims: Sequence[ClientShim]) -> Iterator[None]:
    """Apply each shim to every botocore client created inside (e.g. a moto header shim)."""
    if not shims:
        yield
        return
    original = botocore.session.Session.create_client

    def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        for shim in shims:
            shim(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.session.Session.create_client = original  # type: ignore[method-assign]


# --- execution environments ----------------------------------------------------------------------


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@dataclass
class _Function:
    """A function as the emulator holds it, and its one warm execution environment."""

    name: str
    arn: str
    handler: str
    role_arn: str
    timeout: int
    memory_mb: int
    version: str
    runtime: str
    variables: dict[str, str]
    log_group: str
    log_format: str  # "Text" | "JSON"
    application_log_level: str | None
    system_log_level: str | None
    log_stream: str = ""
    clients: Clients | None = None  # the execution role's session
    credentials_expire: float = 0.0
    modules: dict[str, ModuleType] | None = None  # the environment's own import of its package
    cold: bool = True

    @property
    def package(self) -> str:
        """The code package: the handler module's parent package (``lambdas`` for ingest)."""
        module = self.handler.rpartition(".")[0]
        parent = module.rpartition(".")[0]
        return parent or module


class _Isolation:
    """Gives each function its own module objects of its code package.

    The handlers cache clients in module globals (``lambdas.ingest.runtime()``) and Powertools
    state in module-level objects; ingest and verify share the ``lambdas`` package. So before a
    function runs, every ``lambdas.*`` module is taken out of ``sys.modules`` and the function's
    own set (empty the first time: a cold start imports afresh, under the function's environment)
    is put in; afterwards the function's set is kept aside and the caller's modules are restored.
    Two functions therefore never share a module global, and tests importing ``lambdas`` directly
    are unaffected.
    """

    def __init__(self, function: _Function) -> None:
        self.function = function
        self.saved: dict[str, ModuleType] = {}

    def __enter__(self) -> None:
        package = self.function.package
        for name in [n for n in sys.modules if _in_package(n, package)]:
            self.saved[name] = sys.modules.pop(name)
        sys.modules.update(self.function.modules or {})

    def __exit__(self, *_: object) -> None:
        package = self.function.package
        self.function.modules = {
            name: sys.modules.pop(name) for name in list(sys.modules) if _in_package(name, package)
        }
        sys.modules.update(self.saved)


# --- the service ---------------------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _queue_url(endpoint: str, arn: str) -> str:
    _, _, _, _, account, name = arn.split(":", 5)
    return f"{endpoint.rstrip('/')}/{account}/{name}"


def _outputs_by_name(state: SandboxState, type_token: str, key: str) -> dict[str, ResourceState]:
    found: dict[str, ResourceState] = {}
    for resource in state.of_type(type_token):
        value = resource.outputs.get(key)
        if isinstance(value, str) and value:
            found[value] = resource
    return found


class LambdaService:
    """What AWS Lambda does for the stack's functions, against the sandbox's emulator."""

    def __init__(
        self,
        state: SandboxState,
        *,
        client_shims: Sequence[ClientShim] = (),
    ) -> None:
        """``client_shims`` are applied to every boto3 client a handler creates (moto gaps only)."""
        self.state = state
        self.region = state.region
        self.endpoint = state.endpoint
        self.admin = state.admin()
        self.client_shims = tuple(client_shims)
        self._functions: dict[str, _Function] = {}
        self._mappings: list[dict[str, Any]] = []
        self._schedules: list[tuple[dict[str, Any], str]] = []
        self._async: dict[str, tuple[int, str | None]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the Lambda control plane (functions, mappings, async configs) from the emulator.

        Done at construction and cached: moto 5.2.5 rejects every Lambda API request with
        ``SignatureDoesNotMatch`` once IAM enforcement is on (even the administrator's), so the
        service reads its configuration while enforcement is still off. The roles are assumed
        here too: with enforcement on, moto checks the role's trust policy, which names
        ``lambda.amazonaws.com`` and not the administrator standing in for the Lambda service.
        Call again after changing a mapping or a function (with enforcement off).
        """
        self._functions = {}
        self._mappings = self._read_mappings()
        self._schedules = self._read_scheduled_targets()
        self._async = {}
        for mapping in self._mappings:
            self.function(str(mapping["FunctionArn"]))
        for _, arn in self._schedules:
            function = self.function(arn)
            self._async[function.name] = self._read_async_config(function)
        for function in self._functions.values():
            self._role_clients(function)

    # --- reading the emulator -------------------------------------------------------------------

    def _lambda(self) -> Any:
        return self.admin.client("lambda", self.region)

    def function(self, name_or_arn: str) -> _Function:
        """The function's configuration read back from the emulator (cached environment)."""
        for known in self._functions.values():
            if name_or_arn in (known.name, known.arn):
                return known
        config = self._lambda().get_function_configuration(FunctionName=name_or_arn)
        name = str(config["FunctionName"])
        logging_config = dict(config.get("LoggingConfig") or {})
        stated = _outputs_by_name(self.state, FUNCTION_TYPE, "name").get(name)
        stated_logging = dict((stated.outputs.get("loggingConfig") or {}) if stated else {})
        function = _Function(
            name=name,
            arn=str(config["FunctionArn"]),
            handler=str(config["Handler"]),
            role_arn=str(config["Role"]),
            timeout=int(config.get("Timeout") or 3),
            memory_mb=int(config.get("MemorySize") or 128),
            version=str(config.get("Version") or "$LATEST"),
            runtime=str(config.get("Runtime") or ""),
            variables={
                str(k): str(v)
                for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()
            },
            log_group=str(
                logging_config.get("LogGroup")
                or stated_logging.get("logGroup")
                or f"/aws/lambda/{name}"
            ),
            log_format=str(
                logging_config.get("LogFormat") or stated_logging.get("logFormat") or "Text"
            ),
            application_log_level=logging_config.get("ApplicationLogLevel")
            or stated_logging.get("applicationLogLevel"),
            system_log_level=logging_config.get("SystemLogLevel")
            or stated_logging.get("systemLogLevel"),
        )
        self._functions[name] = function
        return function

    def _role_clients(self, function: _Function) -> Clients:
        """The execution role's session, assumed by the Lambda service (the administrator)."""
        if function.clients is None or time.time() > function.credentials_expire - 60:
            sts = self.admin.client("sts", self.region)
            credentials = sts.assume_role(
                RoleArn=function.role_arn, RoleSessionName=function.name[:64]
            )["Credentials"]
            function.clients = Clients(
                endpoint=self.endpoint,
                access_key_id=credentials["AccessKeyId"],
                secret_access_key=credentials["SecretAccessKey"],
                session_token=credentials["SessionToken"],
            )
            function.credentials_expire = credentials["Expiration"].timestamp()
        return function.clients

    def mappings(self) -> list[dict[str, Any]]:
        """The SQS event source mappings read by :meth:`refresh`."""
        return list(self._mappings)

    def _read_mappings(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self._lambda().get_paginator("list_event_source_mappings").paginate():
            for mapping in page["EventSourceMappings"]:
                if str(mapping.get("EventSourceArn", "")).startswith("arn:aws:sqs:"):
                    found.append(mapping)
        return found

    @staticmethod
    def _enabled(mapping: Mapping[str, Any]) -> bool:
        return mapping.get("State", "Enabled") in ("Enabled", "Enabling", "Updating")

    # --- invoking -------------------------------------------------------------------------------

    def _environment(self, function: _Function, clients: Clients) -> dict[str, str]:
        """The function's variables plus the reserved ones Lambda's Python runtime sets."""
        values = dict(function.variables)
        values.update(
            {
                "AWS_ACCESS_KEY_ID": clients.access_key_id,
                "AWS_SECRET_ACCESS_KEY": clients.secret_access_key,
                "AWS_SESSION_TOKEN": clients.session_token or "",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": function.version,
                "AWS_LAMBDA_LOG_GROUP_NAME": function.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": function.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
                "_HANDLER": function.handler,
            }
        )
        if function.log_format.upper() == "JSON":
            values["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
            if function.application_log_level:
                values["AWS_LAMBDA_LOG_LEVEL"] = function.application_log_level
        if "PATH" in os.environ:  # a process without PATH breaks subprocess lookups
            values["PATH"] = os.environ["PATH"]
        return values

    def invoke(self, function_name: str, event: Any, *, trigger: str = "direct") -> Invocation:
        """Run the function once on ``event`` as Lambda would; logs go to its log group."""
        function = self.function(function_name)
        clients = self._role_clients(function)
        if not function.log_stream:
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            function.log_stream = f"{day}/[{function.version}]{uuid.uuid4().hex}"
        request_id = str(uuid.uuid4())
        invocation = Invocation(function=function.name, trigger=trigger, request_id=request_id)
        tap = _Tap()
        started = time.time()
        context = LambdaContext(
            function_name=function.name,
            function_version=function.version,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            aws_request_id=request_id,
            log_group_name=function.log_group,
            log_stream_name=function.log_stream,
            deadline_ms=started * 1000 + function.timeout * 1000,
        )
        error: BaseException | None = None
        with (
            _environment(self._environment(function, clients)),
            _Isolation(function),
            _client_shims(self.client_shims),
            _capture(tap),
        ):
            try:
                module_name, _, attribute = function.handler.rpartition(".")
                handler = getattr(importlib.import_module(module_name), attribute)
                invocation.result = handler(event, context)
            except Exception as exc:  # noqa: BLE001 - any handler failure is the outcome
                error = exc
                invocation.error_type = type(exc).__name__
                # What the Python runtime logs for an unhandled error (the type, not the text).
                error_line = {"errorType": invocation.error_type, "requestId": request_id}
                sys.stdout.write(json.dumps(error_line) + "\n")
        invocation.duration_ms = (time.time() - started) * 1000
        function.cold = False
        invocation.log_lines = tap.lines()
        self._put_logs(function, clients, invocation)
        if error is not None:
            invocation.result = _error_payload(error, request_id)
        return invocation

    # --- logs -----------------------------------------------------------------------------------

    def _platform_lines(self, function: _Function, invocation: Invocation) -> tuple[str, str, str]:
        duration = invocation.duration_ms
        rid, version = invocation.request_id, function.version
        if function.log_format.upper() != "JSON":
            return (
                f"START RequestId: {rid} Version: {version}",
                f"END RequestId: {rid}",
                f"REPORT RequestId: {rid}\tDuration: {duration:.2f} ms\t"
                f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {function.memory_mb} MB\t"
                f"Max Memory Used: {function.memory_mb} MB",
            )
        now = _now_iso()
        start = {
            "time": now,
            "type": "platform.start",
            "record": {"requestId": rid, "version": version},
        }
        end = {
            "time": now,
            "type": "platform.runtimeDone",
            "record": {"requestId": rid, "status": "error" if invocation.error_type else "success"},
        }
        report = {
            "time": now,
            "type": "platform.report",
            "record": {
                "requestId": rid,
                "metrics": {
                    "durationMs": round(duration, 2),
                    "billedDurationMs": int(duration) + 1,
                    "memorySizeMB": function.memory_mb,
                    "maxMemoryUsedMB": function.memory_mb,
                },
                "status": "error" if invocation.error_type else "success",
            },
        }
        return json.dumps(start), json.dumps(end), json.dumps(report)

    def _application_lines(self, function: _Function, lines: list[str]) -> list[str]:
        """JSON format filters application lines below ``ApplicationLogLevel`` (by ``level``)."""
        threshold = _LEVELS.get(str(function.application_log_level or "").upper())
        if function.log_format.upper() != "JSON" or threshold is None:
            return lines
        kept = []
        for line in lines:
            try:
                level = json.loads(line).get("level", "INFO")
            except (ValueError, AttributeError):
                level = "INFO"
            if _LEVELS.get(str(level).upper(), 20) >= threshold:
                kept.append(line)
        return kept

    def _put_logs(self, function: _Function, clients: Clients, invocation: Invocation) -> None:
        """Lambda writes the log stream with the execution role's credentials."""
        start, end, report = self._platform_lines(function, invocation)
        system = [start, *self._application_lines(function, invocation.log_lines), end, report]
        if function.log_format.upper() == "JSON":
            threshold = _LEVELS.get(str(function.system_log_level or "INFO").upper(), 20)
            if threshold > _LEVELS["INFO"]:  # platform.start/runtimeDone/report are INFO
                system = system[1:-2]
        logs = clients.client("logs", self.region)
        try:
            logs.create_log_stream(
                logGroupName=function.log_group, logStreamName=function.log_stream
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ResourceNotFoundException":  # Lambda creates a missing group itself
                logs.create_log_group(logGroupName=function.log_group)
                logs.create_log_stream(
                    logGroupName=function.log_group, logStreamName=function.log_stream
                )
            elif code != "ResourceAlreadyExistsException":
                raise
        stamp = int(time.time() * 1000)
        if system:
            logs.put_log_events(
                logGroupName=function.log_group,
                logStreamName=function.log_stream,
                logEvents=[{"timestamp": stamp, "message": line} for line in system],
            )
        invocation.log_lines = system

    # --- SQS event sources ----------------------------------------------------------------------

    def _receive(self, sqs: Any, url: str, batch_size: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            received = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(SQS_RECEIVE_MAX, batch_size - len(messages)),
                AttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not received:
                break  # the batching window is not waited for: time is compressed
            messages.extend(received)
        return messages

    def poll(self, mapping: Mapping[str, Any]) -> Invocation | None:
        """One batch of the mapping's queue through its function; None if nothing was visible."""
        function = self.function(str(mapping["FunctionArn"]))
        queue_arn = str(mapping["EventSourceArn"])
        url = _queue_url(self.endpoint, queue_arn)
        # Lambda's poller acts with the function's execution role.
        sqs = self._role_clients(function).client("sqs", self.region)
        messages = self._receive(sqs, url, int(mapping.get("BatchSize") or 10))
        if not messages:
            return None
        event = {"Records": [sqs_record(m, queue_arn, self.region) for m in messages]}
        invocation = self.invoke(function.name, event, trigger="sqs")
        invocation.records = len(messages)
        ids = [str(m["MessageId"]) for m in messages]
        if invocation.error_type is not None:
            failed = set(ids)
        elif "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or []):
            failed = batch_item_failures(invocation.result, ids)
        else:
            failed = set()
        invocation.failed_message_ids = [i for i in ids if i in failed]
        admin_sqs = self.admin.client("sqs", self.region)
        for message in messages:
            if message["MessageId"] in failed:
                # Time compression: visible again now rather than after the visibility timeout.
                admin_sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return invocation

    def _pending(self, function: _Function, queue_arn: str) -> int:
        sqs = self._role_clients(function).client("sqs", self.region)
        attributes = sqs.get_queue_attributes(
            QueueUrl=_queue_url(self.endpoint, queue_arn),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def drain(self, max_rounds: int = 50) -> list[Invocation]:
        """Poll every enabled mapping until its queue is empty (visible + in flight) or rounds run
        out; the invocations in order."""
        invocations: list[Invocation] = []
        active = [m for m in self.mappings() if self._enabled(m)]
        for _ in range(max_rounds):
            busy = [
                m
                for m in active
                if self._pending(self.function(str(m["FunctionArn"])), str(m["EventSourceArn"]))
            ]
            if not busy:
                break
            for mapping in busy:
                invocation = self.poll(mapping)
                if invocation is not None:
                    invocations.append(invocation)
        return invocations

    # --- EventBridge schedules ------------------------------------------------------------------

    def scheduled_targets(self) -> list[tuple[dict[str, Any], str]]:
        """(rule, function ARN) of every enabled schedule rule targeting a stack function."""
        return list(self._schedules)

    def _read_scheduled_targets(self) -> list[tuple[dict[str, Any], str]]:
        events = self.admin.client("events", self.region)
        functions = {fn.outputs.get("arn") for fn in self.state.created(FUNCTION_TYPE)}
        found: list[tuple[dict[str, Any], str]] = []
        for page in events.get_paginator("list_rules").paginate():
            for rule in page["Rules"]:
                if not rule.get("ScheduleExpression") or rule.get("State") != "ENABLED":
                    continue
                targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
                for target in targets:
                    arn = str(target["Arn"])
                    if arn.startswith("arn:aws:lambda:") and (not functions or arn in functions):
                        found.append((rule, arn))
        return found

    def _async_config(self, function: _Function) -> tuple[int, str | None]:
        """(MaximumRetryAttempts, on-failure destination ARN) of the function's async invokes."""
        if function.name not in self._async:
            self._async[function.name] = self._read_async_config(function)
        return self._async[function.name]

    def _read_async_config(self, function: _Function) -> tuple[int, str | None]:
        try:
            config = self._lambda().get_function_event_invoke_config(FunctionName=function.name)
            retries = config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)
            on_failure = (config.get("DestinationConfig") or {}).get("OnFailure") or {}
            return int(retries), on_failure.get("Destination")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        for resource in self.state.of_type(EVENT_INVOKE_CONFIG_TYPE):
            if resource.outputs.get("functionName") in (function.name, function.arn):
                destination = (resource.outputs.get("destinationConfig") or {}).get(
                    "onFailure"
                ) or {}
                retries = resource.outputs.get("maximumRetryAttempts", DEFAULT_ASYNC_RETRIES)
                return int(retries), destination.get("destination")
        return DEFAULT_ASYNC_RETRIES, None

    def fire_schedules(self) -> list[Invocation]:
        """Invoke each scheduled function once with EventBridge's Scheduled Event (async rules)."""
        invocations: list[Invocation] = []
        for rule, function_arn in self.scheduled_targets():
            function = self.function(function_arn)
            event = {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": self.state.account_id,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.region,
                "resources": [rule["Arn"]],
                "detail": {},
            }
            retries, destination = self._async_config(function)
            for attempt in range(1, retries + 2):
                invocation = self.invoke(function.name, event, trigger="schedule")
                invocation.attempt = attempt
                invocations.append(invocation)
                if invocation.error_type is None:
                    break
            else:
                if destination:
                    self._send_failure(function, event, invocations[-1], destination, retries + 1)
        return invocations

    def _send_failure(
        self,
        function: _Function,
        event: dict[str, Any],
        invocation: Invocation,
        destination: str,
        attempts: int,
    ) -> None:
        """Lambda's on-failure destination record, sent with the execution role's credentials."""
        record = {
            "version": "1.0",
            "timestamp": _now_iso(),
            "requestContext": {
                "requestId": invocation.request_id,
                "functionArn": f"{function.arn}:{function.version}",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": function.version,
                "functionError": "Unhandled",
            },
            "responsePayload": invocation.result,
        }
        clients = self._role_clients(function)
        if destination.startswith("arn:aws:sqs:"):
            clients.client("sqs", self.region).send_message(
                QueueUrl=_queue_url(self.endpoint, destination), MessageBody=json.dumps(record)
            )
        elif destination.startswith("arn:aws:sns:"):
            clients.client("sns", self.region).publish(
                TopicArn=destination, Message=json.dumps(record)
            )
        else:
            raise LambdaRuntimeError(f"unsupported on-failure destination for {function.name}")


# --- event shapes --------------------------------------------------------------------------------


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ReceiveMessage message in the shape of Lambda's SQS event record."""
    system = message.get("Attributes") or {}
    attributes = {
        name: str(system[name])
        for name in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "AWSTraceHeader",
            "SequenceNumber",
            "MessageGroupId",
            "MessageDeduplicationId",
        )
        if name in system
    }
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        message_attributes[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": list(value.get("StringListValues") or []),
            "binaryListValues": [
                base64.b64encode(b).decode() for b in value.get("BinaryListValues") or []
            ],
            "dataType": value.get("DataType"),
        }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def batch_item_failures(response: Any, message_ids: Sequence[str]) -> set[str]:
    """The failed message ids of a ``ReportBatchItemFailures`` response, as Lambda reads it.

    No response or an empty list: every record succeeded. A malformed response or an identifier
    that is empty or not in the batch: Lambda treats the whole batch as failed.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        return set(message_ids)
    failures = response.get("batchItemFailures")
    if not failures:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return set(message_ids)
        failed.add(str(identifier))
    return failed


def _error_payload(error: BaseException, request_id: str) -> dict[str, Any]:
    """Lambda's Python runtime's response payload for an unhandled exception."""
    return {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(error.__traceback__),
    }
