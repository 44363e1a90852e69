"""Client: trainerd's gRPC API with the conventions of HF Trainer users.

    import trainerd

    client = trainerd.Client()                 # TRAINER_SERVER, TRAINER_TOKEN, ... as trainer-cli
    job = client.submit("examples/fashion-mnist-cnn.yaml", name="fmnist")
    job.wait()                                 # raises JobFailed with the reason
    print(job.status().eval_metrics)
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterator, List, Mapping, Optional, TypeVar, Union

import grpc

from ._proto.trainer.v1 import job_service_pb2, job_service_pb2_grpc, sweep_service_pb2, sweep_service_pb2_grpc
from .errors import InvalidSpec, TrainerdError, Unavailable, from_rpc_error
from .job import Job
from .spec import SpecLike, to_job_spec, warn_all
from .sweep import Sweep, to_sweep_spec
from .tokens import find_token

DEFAULT_SERVER = "127.0.0.1:50051"
T = TypeVar("T")


def _seconds(time_limit: Union[None, int, float, str]) -> int:
    """A time limit in seconds: a number, or "90m", "2h30m", "600s"."""
    if time_limit is None:
        return 0
    if isinstance(time_limit, (int, float)):
        return int(time_limit)
    total, number = 0, ""
    for ch in str(time_limit).strip():
        if ch.isdigit():
            number += ch
        elif ch in "hms" and number:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
        else:
            raise InvalidSpec([f"time_limit: '{time_limit}' is not a duration such as 90m, 2h30m or 600s"])
    if number:
        total += int(number)
    if total < 1:
        raise InvalidSpec([f"time_limit: '{time_limit}' is not a duration such as 90m, 2h30m or 600s"])
    return total


class Client:
    """A connection to trainerd.

    server: "host:port" (default $TRAINER_SERVER, else 127.0.0.1:50051). token: the access
    token (default: $TRAINER_TOKEN, ~/.config/trainerd/token, then the data root's
    admin.token, as trainer-cli; a token file others may read is refused). tls_ca: the CA
    certificate (PEM file) to verify trainerd with (default $TRAINER_TLS_CA; none:
    plaintext, for loopback). tls_cert/tls_key: a client certificate, for a trainerd
    started with --tls-client-ca. timeout: seconds each call may take.
    """

    def __init__(self, server: Optional[str] = None, token: Optional[str] = None, tls_ca: Optional[str] = None,
                 tls_cert: Optional[str] = None, tls_key: Optional[str] = None, data_root: Optional[str] = None,
                 timeout: float = 10.0):
        self.server = server or os.environ.get("TRAINER_SERVER") or DEFAULT_SERVER
        self.timeout = timeout
        self._explicit_token = token
        self._data_root = data_root
        self._token: Optional[str] = None
        tls_ca = tls_ca or os.environ.get("TRAINER_TLS_CA") or None
        if tls_ca:
            def read(path: Optional[str]) -> Optional[bytes]:
                if not path:
                    return None
                with open(path, "rb") as f:
                    return f.read()

            credentials = grpc.ssl_channel_credentials(read(tls_ca), read(tls_key), read(tls_cert))
            self._channel = grpc.secure_channel(self.server, credentials)
        else:
            self._channel = grpc.insecure_channel(self.server)
        self._jobs = job_service_pb2_grpc.JobServiceStub(self._channel)
        self._sweeps = sweep_service_pb2_grpc.SweepServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------

    def _metadata(self) -> List[tuple]:
        if self._token is None:
            # Looked for again until found: a trainerd started a moment ago writes its
            # admin.token when it starts.
            self._token = find_token(self._explicit_token, self._data_root)
        return [("authorization", f"Bearer {self._token}")] if self._token else []

    def _call(self, method: Callable[..., T], request: Any, idempotent: bool = True) -> T:
        """One unary call; an idempotent one is tried again while trainerd is unreachable
        (0.25 + 0.5 + 1 s: a trainerd started a moment ago is waited for)."""
        backoff = 0.25
        for attempt in range(4 if idempotent else 1):
            try:
                return method(request, timeout=self.timeout, metadata=self._metadata())
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt == 3 or not idempotent:
                    raise from_rpc_error(e, self.server) from None
            time.sleep(backoff)
            backoff *= 2
        raise Unavailable(f"cannot reach trainerd at {self.server}")

    def _stream(self, method: Callable[..., Iterator[T]], request: Any) -> Iterator[T]:
        """A server stream; errors as this package's exceptions."""
        try:
            for item in method(request, metadata=self._metadata()):
                yield item
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.server) from None

    # -- jobs ----------------------------------------------------------------------------

    def submit(self, spec: SpecLike, *, name: Optional[str] = None, priority: Optional[int] = None,
               ranks: Optional[int] = None, gpus_per_rank: Optional[int] = None,
               time_limit: Union[None, int, float, str] = None, max_restarts: Optional[int] = None,
               validate_only: bool = False) -> Job:
        """Queues a job; returns it. `spec`: a dict (the YAML form, e.g. trainerd.spec(...)),
        the path of a YAML/JSON spec file, or a JobSpec. Every problem of the spec raises
        InvalidSpec naming its field, those found here before anything is sent. Warnings
        (an HF argument that changes nothing here, an output_dir trainerd replaced) are
        issued as Python warnings. validate_only: trainerd checks it and queues nothing
        (the Job returned then has no id).

            job = client.submit(trainerd.spec(model="models/llama", args=args, train="train.jsonl"),
                                name="llama-sft", gpus_per_rank=1, time_limit="2h")
        """
        message, warned = to_job_spec(spec)
        warn_all(warned)
        request = job_service_pb2.SubmitJobRequest(spec=message, name=name or "", priority=priority or 0,
                                                   validate_only=validate_only)
        request.resources.ranks = ranks or 1
        request.resources.gpus_per_rank = gpus_per_rank or 0
        request.resources.time_limit_s = _seconds(time_limit)
        if max_restarts is not None:
            request.max_restarts = max_restarts
        response = self._call(self._jobs.SubmitJob, request, idempotent=False)
        warn_all(list(response.warnings))
        return Job(self, response.job_id, response.job)

    def job(self, job_id: str) -> Job:
        """The job `job_id` (NotFound when there is none)."""
        return Job(self, job_id, self._call(self._jobs.GetJob, job_service_pb2.GetJobRequest(job_id=job_id)))

    def jobs(self, state: Union[None, str, List[str]] = None, mine: bool = False,
             page_size: int = 100) -> Iterator[Job]:
        """Every job (newest first), page by page; `state`: "RUNNING" or a list of states
        (any case); `mine`: only yours."""
        states = [state] if isinstance(state, str) else list(state or [])
        try:
            values = [job_service_pb2.JobState.Value(s.upper()) for s in states]
        except ValueError:
            raise InvalidSpec([f"state: {states} holds an unknown state"]) from None
        token = ""
        while True:
            page = self._call(self._jobs.ListJobs, job_service_pb2.ListJobsRequest(
                states=values, mine=mine, page_size=page_size, page_token=token))
            for message in page.jobs:
                yield Job(self, message.id, message)
            token = page.next_page_token
            if not token:
                return

    def whoami(self) -> Mapping[str, Any]:
        """{"user": ..., "admin": ...} of the token."""
        answer = self._call(self._jobs.WhoAmI, job_service_pb2.WhoAmIRequest())
        return {"user": answer.user, "admin": answer.admin}

    # -- sweeps --------------------------------------------------------------------------

    def submit_sweep(self, sweep: Union[str, "os.PathLike[str]", Mapping[str, Any]], *, name: Optional[str] = None,
                     priority: Optional[int] = None, validate_only: bool = False) -> Sweep:
        """Starts a hyperparameter sweep (docs/sweeps.md): a sweep file's path or its dict."""
        message = to_sweep_spec(sweep)
        request = sweep_service_pb2.SubmitSweepRequest(spec=message, name=name or "", priority=priority or 0,
                                                       validate_only=validate_only)
        response = self._call(self._sweeps.SubmitSweep, request, idempotent=False)
        warn_all(list(response.warnings))
        return Sweep(self, response.sweep_id, response.sweep)

    def sweep(self, sweep_id: str) -> Sweep:
        return Sweep(self, sweep_id, self._call(self._sweeps.GetSweep, sweep_service_pb2.GetSweepRequest(
            sweep_id=sweep_id)))

    def sweeps(self, mine: bool = False) -> List[Sweep]:
        answer = self._call(self._sweeps.ListSweeps, sweep_service_pb2.ListSweepsRequest(mine=mine, page_size=1000))
        return [Sweep(self, s.id, s) for s in answer.sweeps]


__all__ = ["Client", "TrainerdError"]
