"""The exceptions of the trainerd client: named for what happened, never raw gRPC errors.

    try:
        job = client.submit("job.yaml")
    except trainerd.InvalidSpec as e:
        for problem in e.problems:      # "training_args.learning_rat: unknown field"
            print(problem)
"""
from __future__ import annotations

from typing import List, Optional

import grpc


class TrainerdError(Exception):
    """Anything trainerd (or the way to it) answered with an error.

    `code` is the gRPC status code's name ("NOT_FOUND", ...) when trainerd answered.
    """

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidSpec(TrainerdError):
    """The spec (or the request) is not valid; `problems` holds one line per problem, each
    naming its field ("training_args.max_steps: expected an integer, got \"ten\"")."""

    def __init__(self, problems: List[str], code: Optional[str] = "INVALID_ARGUMENT"):
        super().__init__("\n".join(problems), code)
        self.problems = list(problems)


class Unauthenticated(TrainerdError):
    """No access token was found, or trainerd does not know it (or it was revoked)."""


class PermissionDenied(TrainerdError):
    """The token's user may not do that (another user's job, an admin-only call), or a
    token file others may read was refused."""


class NotFound(TrainerdError):
    """No such job, sweep or checkpoint."""


class Unavailable(TrainerdError):
    """trainerd cannot be reached (not running, wrong address), or is shutting down."""


class FailedPrecondition(TrainerdError):
    """The job is not in a state that allows it (resuming a running job)."""


class JobFailed(TrainerdError):
    """The job that was waited for ended FAILED; `reason` is its error."""

    def __init__(self, job_id: str, reason: str):
        super().__init__(f"job {job_id} failed: {reason}", "FAILED")
        self.job_id = job_id
        self.reason = reason


class JobCancelled(TrainerdError):
    """The job that was waited for was cancelled."""

    def __init__(self, job_id: str):
        super().__init__(f"job {job_id} was cancelled", "CANCELLED")
        self.job_id = job_id


_BY_CODE = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def from_rpc_error(error: grpc.RpcError, server: str = "") -> TrainerdError:
    """The exception for a failed call."""
    code = error.code()
    details = error.details() or code.name
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidSpec([line for line in details.split("\n") if line.strip()])
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"cannot reach trainerd at {server}: {details} - is it running? (set server= or TRAINER_SERVER)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        details = f"trainerd at {server} did not answer in time"
    return _BY_CODE.get(code, TrainerdError)(details, code.name)
