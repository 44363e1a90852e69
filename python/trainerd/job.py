"""Job: one trainerd job, as HF Trainer users think of a run.

    job = client.submit(spec, name="fmnist")
    for line in job.logs(follow=True):       # goes on across a trainerd restart
        print(line.text)
    status = job.wait()                       # JobStatus; raises JobFailed / JobCancelled
    job.metrics("eval_accuracy").to_pandas()  # where pandas is installed
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from ._proto.trainer.v1 import job_service_pb2
from .errors import JobCancelled, JobFailed, TrainerdError, Unavailable
from .progress import ProgressBar

if TYPE_CHECKING:
    from .client import Client

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
# Following a job goes on across a trainerd restart: tries again while trainerd is
# unreachable, 0.2 s doubling to 2 s, for about a minute (as trainer-cli's logs -f).
RECONNECT_SECONDS = 60.0


@dataclasses.dataclass
class JobStatus:
    """Where a job stands (GetJob), in plain Python values."""
    id: str
    name: str
    state: str                     # QUEUED, STARTING, RUNNING, ..., SUCCEEDED, FAILED, CANCELLED
    owner: str
    step: int
    max_steps: int
    epoch: float
    loss: Optional[float]
    learning_rate: Optional[float]
    eval_metrics: Dict[str, float]
    test_metrics: Dict[str, float]
    error: str
    queue_position: int
    queue_reason: str
    output_dir: str
    best_checkpoint: str
    attempts: int

    @staticmethod
    def of(job: job_service_pb2.Job) -> "JobStatus":
        p = job.progress
        return JobStatus(
            id=job.id, name=job.name, state=job_service_pb2.JobState.Name(job.state), owner=job.owner,
            step=p.step, max_steps=p.max_steps, epoch=p.epoch, loss=p.loss if p.HasField("loss") else None,
            learning_rate=p.learning_rate if p.HasField("learning_rate") else None,
            eval_metrics=dict(p.eval_metrics), test_metrics=dict(p.test_metrics), error=job.error,
            queue_position=job.queue_position, queue_reason=job.queue_reason, output_dir=job.output_dir,
            best_checkpoint=job.best_checkpoint, attempts=len(job.attempts))

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL


@dataclasses.dataclass
class LogLine:
    seq: int          # per job, from 1, no gaps
    time_unix_ms: int
    rank: int
    level: str        # debug, info, warning, error
    text: str
    attempt: int


class MetricList(list):
    """Metric points (dicts: name, split, step, epoch, value, time_unix_ms, attempt), in the
    order they were logged."""

    def to_pandas(self) -> Any:
        """A pandas DataFrame of the points (pandas must be installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas needs pandas: apt-get install python3-pandas (or pip install pandas)") from None
        return pandas.DataFrame(list(self), columns=["name", "split", "step", "epoch", "value", "time_unix_ms",
                                                     "attempt"])


class Job:
    """A job on trainerd. Made by Client.submit, Client.job and Client.jobs."""

    def __init__(self, client: "Client", job_id: str, message: Optional[job_service_pb2.Job] = None):
        self._client = client
        self.id = job_id
        self._message = message if message is not None else job_service_pb2.Job()

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {job_service_pb2.JobState.Name(self._message.state)})"

    @property
    def output_dir(self) -> str:
        """Where the job writes: its checkpoints and final model (on trainerd's disk)."""
        if not self._message.output_dir:
            self.refresh()
        return self._message.output_dir

    @property
    def state(self) -> str:
        """The state as last fetched (status() fetches it again)."""
        return job_service_pb2.JobState.Name(self._message.state)

    @property
    def message(self) -> job_service_pb2.Job:
        """The Job message as last fetched (every field of the API)."""
        return self._message

    def refresh(self) -> job_service_pb2.Job:
        self._message = self._client._call(self._client._jobs.GetJob, job_service_pb2.GetJobRequest(job_id=self.id))
        return self._message

    def status(self) -> JobStatus:
        """Where the job stands now."""
        return JobStatus.of(self.refresh())

    def wait(self, timeout: Optional[float] = None, progress: bool = False, poll: float = 0.5) -> JobStatus:
        """Waits for the job to end (across trainerd restarts) and returns its status.
        Raises JobFailed (with the reason) or JobCancelled, and TimeoutError after
        `timeout` seconds. progress: show a progress bar meanwhile (tqdm where installed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = ProgressBar(self.id) if progress else None
        try:
            while True:
                status = self._status_reconnecting()
                if bar:
                    bar.update(status)
                if status.finished:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"job {self.id} is still {status.state} after {timeout} s")
                time.sleep(poll)
        finally:
            if bar:
                bar.close()
        if status.state == "FAILED":
            raise JobFailed(self.id, status.error or "no reason recorded")
        if status.state == "CANCELLED":
            raise JobCancelled(self.id)
        return status

    def watch(self, timeout: Optional[float] = None) -> JobStatus:
        """A live progress bar (step/total, loss, learning rate, eval metric) until the job
        ends, as `trainer-cli watch`; returns the final status (raises as wait does)."""
        return self.wait(timeout=timeout, progress=True)

    def _status_reconnecting(self) -> JobStatus:
        give_up = time.monotonic() + RECONNECT_SECONDS
        backoff = 0.2
        while True:
            try:
                return self.status()
            except Unavailable:
                if time.monotonic() >= give_up:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def logs(self, follow: bool = False, rank: Optional[int] = None, since: Optional[int] = None,
             tail: Optional[int] = None, level: str = "") -> Iterator[LogLine]:
        """The job's log lines; with follow, until the job ends. since: the first sequence
        number wanted; tail: start at the last N lines. A dropped connection (a trainerd
        restart) is taken up again from the line after the last one received, so that no
        line is missed or repeated."""
        next_seq = since or 1
        first = True
        backoff, give_up = 0.2, None
        while True:
            request = job_service_pb2.StreamLogsRequest(job_id=self.id, follow=follow, from_seq=next_seq,
                                                        min_level=level, tail=(tail or 0) if first else 0)
            if rank is not None:
                request.rank = rank
            try:
                for line in self._client._stream(self._client._jobs.StreamLogs, request):
                    first = False
                    backoff, give_up = 0.2, None
                    next_seq = line.seq + 1
                    yield LogLine(line.seq, line.time_unix_ms, line.rank, line.level, line.text, line.attempt)
                return
            except Unavailable:
                give_up = give_up or time.monotonic() + RECONNECT_SECONDS
                if time.monotonic() >= give_up:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def metrics(self, name: Optional[str] = None, split: Optional[str] = None) -> MetricList:
        """The job's metric history as its run stands (GetMetrics): a point per logged value."""
        answer = self._client._call(self._client._jobs.GetMetrics, job_service_pb2.GetMetricsRequest(
            job_id=self.id, name=name or "", split=split or ""))
        return MetricList({"name": p.name, "split": p.split, "step": p.step, "epoch": p.epoch, "value": p.value,
                           "time_unix_ms": p.time_unix_ms, "attempt": p.attempt} for p in answer.points)

    def checkpoints(self) -> List[Dict[str, Any]]:
        """The checkpoints on disk: step, path, size_bytes, metrics, is_best."""
        answer = self._client._call(self._client._jobs.ListCheckpoints,
                                    job_service_pb2.ListCheckpointsRequest(job_id=self.id))
        return [{"step": c.step, "path": c.path, "size_bytes": c.size_bytes, "metrics": dict(c.metrics),
                 "is_best": c.is_best, "created_unix_ms": c.created_unix_ms} for c in answer.checkpoints]

    def cancel(self) -> JobStatus:
        """Cancels the job (a running one saves a checkpoint first)."""
        self._message = self._client._call(self._client._jobs.CancelJob,
                                           job_service_pb2.CancelJobRequest(job_id=self.id))
        return JobStatus.of(self._message)

    def resume(self, checkpoint_step: int = 0, stop_at_step: int = 0) -> JobStatus:
        """Runs a finished job again from a checkpoint (0: the latest), to its end or to
        stop_at_step."""
        self._message = self._client._call(
            self._client._jobs.ResumeJob,
            job_service_pb2.ResumeJobRequest(job_id=self.id, checkpoint_step=checkpoint_step,
                                             stop_at_step=stop_at_step), idempotent=False)
        return JobStatus.of(self._message)

    def delete(self, files: bool = False) -> None:
        """Deletes a finished job's records (and its folder with files=True)."""
        self._client._call(self._client._jobs.DeleteJob,
                           job_service_pb2.DeleteJobRequest(job_id=self.id, delete_files=files))


__all__ = ["Job", "JobStatus", "LogLine", "MetricList", "TrainerdError"]
