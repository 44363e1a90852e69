"""Sweep: a hyperparameter sweep on trainerd (docs/sweeps.md), from a sweep file or dict.

    sweep = client.submit_sweep("examples/sweep-fashion-mnist.yaml", name="lr-search")
    best = sweep.wait()            # the Sweep message once it has ended
    print(best.best_trial, best.best_objective, best.best_checkpoint)
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Union

from ._proto.trainer.v1 import sweep_service_pb2
from .errors import InvalidSpec
from .spec import load_spec_file, to_job_spec

if TYPE_CHECKING:
    from .client import Client


def _flow(value: Any) -> str:
    """A categorical value as the YAML text trainerd applies ("16", "cosine", "[64, 32]")."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def to_sweep_spec(sweep: Union[str, "os.PathLike[str]", Mapping[str, Any]]) -> sweep_service_pb2.SweepSpec:
    """The SweepSpec of a sweep file (its job inline or a path next to it) or dict; fields
    it does not have are refused by name (trainerd checks the rest)."""
    base = os.getcwd()
    if isinstance(sweep, (str, os.PathLike)):
        import yaml

        path = os.fspath(sweep)
        base = os.path.dirname(os.path.abspath(path))
        try:
            with open(path, encoding="utf-8") as f:
                sweep = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise InvalidSpec([f"sweep: {path}: no such file"], code="NOT_FOUND") from None
    if not isinstance(sweep, Mapping):
        raise InvalidSpec(["sweep: expected a mapping of job, search_space, objective, searcher, ..."])
    problems: List[str] = []
    out = sweep_service_pb2.SweepSpec()
    for key, value in sweep.items():
        if key == "job":
            job = value
            if isinstance(value, (str, os.PathLike)):
                job = load_spec_file(os.path.join(base, os.fspath(value)))
            try:
                message, _ = to_job_spec(job)
                out.job.CopyFrom(message)
            except InvalidSpec as e:
                problems += [f"job: {p}" for p in e.problems]
        elif key == "search_space" and isinstance(value, Mapping):
            for field, parameter in value.items():
                p = out.search_space.add(field=str(field))
                if not isinstance(parameter, Mapping):
                    problems.append(f"search_space.{field}: expected {{type, min, max, values, step}}")
                    continue
                for name, v in parameter.items():
                    if name == "type":
                        p.type = str(v)
                    elif name in ("min", "max", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                        setattr(p, name, float(v))
                    elif name == "values" and isinstance(v, list):
                        p.values.extend(_flow(item) for item in v)
                    else:
                        problems.append(f"search_space.{field}.{name}: unknown field or wrong type")
        elif key == "objective" and isinstance(value, Mapping):
            for name, v in value.items():
                if name in ("metric", "direction"):
                    setattr(out.objective, name, str(v))
                else:
                    problems.append(f"objective.{name}: unknown field")
        elif key == "searcher":
            if isinstance(value, str):
                out.searcher.name = value
                continue
            for name, v in dict(value).items():
                if name in ("name", "max_length", "divisor", "max_rungs"):
                    setattr(out.searcher, name, v)
                else:
                    problems.append(f"searcher.{name}: unknown field")
        elif key in ("n_trials", "max_concurrent_trials", "seed") and isinstance(value, int):
            setattr(out, key, value)
        else:
            problems.append(f"{key}: unknown field or wrong type")
    if problems:
        raise InvalidSpec(problems)
    return out


class Sweep:
    """A sweep on trainerd: its trials, best trial and the steps early stopping saved."""

    def __init__(self, client: "Client", sweep_id: str, message: Optional[sweep_service_pb2.Sweep] = None):
        self._client = client
        self.id = sweep_id
        self.message = message if message is not None else sweep_service_pb2.Sweep()

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, {sweep_service_pb2.SweepState.Name(self.message.state)})"

    @property
    def state(self) -> str:
        """The state as last fetched (status() fetches it again)."""
        return sweep_service_pb2.SweepState.Name(self.message.state)

    def refresh(self) -> sweep_service_pb2.Sweep:
        self.message = self._client._call(self._client._sweeps.GetSweep,
                                          sweep_service_pb2.GetSweepRequest(sweep_id=self.id))
        return self.message

    def status(self) -> str:
        """SWEEP_RUNNING, SWEEP_COMPLETED, SWEEP_FAILED or SWEEP_CANCELLED."""
        return sweep_service_pb2.SweepState.Name(self.refresh().state)

    def trials(self) -> List[Dict[str, Any]]:
        """Each trial: number, job_id, values, state, rung, steps, objective, error,
        checkpoint and its decisions' reasons."""
        message = self.refresh()
        return [{"number": t.number, "job_id": t.job_id, "values": list(t.values),
                 "state": sweep_service_pb2.TrialState.Name(t.state), "rung": t.rung, "steps": t.steps,
                 "objective": t.objective if t.HasField("objective") else None, "error": t.error,
                 "checkpoint": t.checkpoint, "decisions": [d.reason for d in t.decisions]} for t in message.trials]

    def wait(self, timeout: Optional[float] = None, poll: float = 1.0) -> sweep_service_pb2.Sweep:
        """Waits for the sweep to end; returns the Sweep message (TimeoutError after timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().state == sweep_service_pb2.SWEEP_RUNNING:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {self.id} is still running after {timeout} s")
            time.sleep(poll)
        return self.message

    def cancel(self) -> str:
        self.message = self._client._call(self._client._sweeps.CancelSweep,
                                          sweep_service_pb2.CancelSweepRequest(sweep_id=self.id))
        return sweep_service_pb2.SweepState.Name(self.message.state)
