"""trainerd's Python client: submit a job (a spec file, a dict, or trainerd.spec with a
transformers TrainingArguments), follow it, get its results.

    import trainerd

    client = trainerd.Client()
    job = client.submit(trainerd.spec(model={"type": "mlp"}, args={"max_steps": 200},
                                      train="train.csv", eval_split=0.1), name="quick")
    job.watch()                      # a progress bar until it ends
    print(job.metrics("eval_loss"))

The errors are this package's exceptions (InvalidSpec, PermissionDenied, ...), never raw
gRPC errors. `python -m trainerd --help` mirrors trainer-cli's main verbs.
"""
from .client import Client
from .errors import (FailedPrecondition, InvalidSpec, JobCancelled, JobFailed, NotFound, PermissionDenied,
                     TrainerdError, Unauthenticated, Unavailable)
from .job import Job, JobStatus, LogLine, MetricList
from .spec import spec, to_job_spec
from .sweep import Sweep
from .tokens import find_token

__version__ = "0.1.0"

__all__ = ["Client", "Job", "JobStatus", "LogLine", "MetricList", "Sweep", "spec", "to_job_spec", "find_token",
           "TrainerdError", "InvalidSpec", "PermissionDenied", "Unauthenticated", "NotFound", "Unavailable",
           "FailedPrecondition", "JobFailed", "JobCancelled"]
