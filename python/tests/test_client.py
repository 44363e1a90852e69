"""The Python client (python/trainerd) against a real trainerd with real workers."""
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time

import grpc
import pytest

import trainerd
from trainerd._proto.trainer.v1 import job_service_pb2, job_service_pb2_grpc
from conftest import BUILD, Daemon, fashion_job


@dataclasses.dataclass
class TrainingArguments:
    """Shaped as transformers.TrainingArguments (its field names and defaults, for the
    fields used here; transformers is not packaged in Debian 12): a dataclass whose
    to_dict() gives every field, the default ones included."""
    output_dir: str
    learning_rate: float = 5e-5
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    eval_strategy: str = "no"
    eval_steps: float = None
    logging_steps: float = 500
    seed: int = 42
    push_to_hub: bool = False
    jit_mode_eval: bool = False
    half_precision_backend: str = "auto"
    report_to: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)


def args(**changes) -> TrainingArguments:
    values = dict(output_dir="runs/hf-script", learning_rate=2e-3, max_steps=30, per_device_train_batch_size=32,
                  eval_strategy="steps", eval_steps=15, logging_steps=5)
    values.update(changes)
    return TrainingArguments(**values)


def test_training_arguments_job_runs_to_success_with_eval_metrics(client):
    with pytest.warns(UserWarning) as warned:
        job = client.submit(trainerd.spec(model={"type": "mlp", "hidden_sizes": [32]}, args=args(push_to_hub=True),
                                          train=fashion_job({})["data"]["train"], eval_split=0.2, mean=0.286,
                                          std=0.353, metrics=["accuracy"]), name="from-python")
    messages = [str(w.message) for w in warned]
    # Ignored with the daemon's own reason; the output_dir trainerd replaced, as it says.
    assert any("training_args.push_to_hub: accepted and ignored (trainerd exports to a registry folder" in m
               for m in messages), messages
    assert any("training_args.output_dir: not used" in m for m in messages), messages
    status = job.wait(timeout=120)
    assert status.state == "SUCCEEDED"
    assert status.step == 30
    assert "eval_loss" in status.eval_metrics and "eval_accuracy" in status.eval_metrics
    assert job.message.spec.training_args.learning_rate == pytest.approx(2e-3)
    assert job.message.spec.training_args.eval_steps == 15
    assert os.path.isdir(job.output_dir)
    assert [j.id for j in client.jobs(state="succeeded")] == [job.id]
    assert job.checkpoints() == [] or all("path" in c for c in job.checkpoints())


def test_unknown_arguments_are_refused_by_name_before_anything_is_sent(client):
    with pytest.raises(trainerd.InvalidSpec) as refused:
        client.submit(fashion_job(trainerd.spec(args=args(jit_mode_eval=True))["training_args"]
                                  | {"learning_rat": 0.1, "max_steps": "ten"}))
    assert sorted(refused.value.problems) == ["training_args.jit_mode_eval: unknown field",
                                              "training_args.learning_rat: unknown field",
                                              "training_args.max_steps: expected an integer, got 'ten'"]
    assert list(client.jobs()) == []  # nothing was sent
    # What only trainerd can judge comes back the same way, each problem by field.
    with pytest.raises(trainerd.InvalidSpec) as refused:
        client.submit(fashion_job({"learning_rate": -1, "per_device_train_batch_size": 0}))
    assert any(p.startswith("training_args.learning_rate") for p in refused.value.problems), refused.value.problems
    assert any(p.startswith("training_args.per_device_train_batch_size") for p in refused.value.problems)
    with pytest.raises(trainerd.InvalidSpec, match="modle: unknown field"):
        client.submit({"modle": {"type": "mlp"}})


def test_logs_follow_across_a_trainerd_restart_with_no_gap_or_duplicate(client, daemon):
    job = client.submit(fashion_job({"max_steps": 400, "logging_steps": 1}))
    lines = []
    errors = []

    def follow():
        try:
            lines.extend(job.logs(follow=True))
        except Exception as e:  # the assertion below names it
            errors.append(e)

    reader = threading.Thread(target=follow)
    reader.start()
    deadline = time.monotonic() + 60
    while len(lines) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.kill9()  # the worker goes on; the stream breaks
    time.sleep(0.5)
    daemon.start()
    reader.join(timeout=180)
    assert not reader.is_alive() and not errors, errors
    assert job.wait(timeout=120).state == "SUCCEEDED"
    seqs = [line.seq for line in lines]
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate
    assert len(seqs) > 100
    # The whole log, read again, is the one that was followed.
    assert [l.seq for l in job.logs()] == seqs


def test_metrics_equal_get_metrics(client, daemon):
    job = client.submit(fashion_job({"max_steps": 20, "logging_steps": 5}))
    job.wait(timeout=120)
    channel = grpc.insecure_channel(daemon.address)
    raw = job_service_pb2_grpc.JobServiceStub(channel).GetMetrics(
        job_service_pb2.GetMetricsRequest(job_id=job.id), metadata=[("authorization", f"Bearer {daemon.admin_token}")])
    points = job.metrics()
    assert [(p["name"], p["split"], p["step"], p["value"]) for p in points] == \
           [(p.name, p.split, p.step, p.value) for p in raw.points]
    assert {p["name"] for p in job.metrics("loss")} == {"loss"}
    with pytest.raises(ImportError, match="pandas"):
        points.to_pandas()  # pandas is not installed here: said so, not a NameError


def test_another_user_is_denied_and_a_stranger_unauthenticated(client, daemon):
    job = client.submit(fashion_job({"max_steps": 5}))
    bob = trainerd.Client(server=daemon.address, token=daemon.add_user("bob"))
    with pytest.raises(trainerd.PermissionDenied):
        bob.job(job.id)
    assert list(bob.jobs()) == []
    assert bob.whoami() == {"user": "bob", "admin": False}
    with pytest.raises(trainerd.Unauthenticated):
        trainerd.Client(server=daemon.address, token="trd_forged").job(job.id)
    with pytest.raises(trainerd.NotFound):
        client.job("j000000000ff")
    job.wait(timeout=120)
    job.delete(files=True)
    with pytest.raises(trainerd.NotFound):
        job.status()


def test_failure_raises_with_the_reason_and_cancel_raises_cancelled(client):
    # A time limit ends the attempt (SIGTERM two grace periods... here 10 s before it).
    failing = client.submit(fashion_job({"max_steps": 1000000, "logging_steps": 50}), time_limit="12s",
                            max_restarts=0)
    with pytest.raises(trainerd.JobFailed, match="time limit") as failed:
        failing.wait(timeout=120)
    assert failed.value.job_id == failing.id
    long = client.submit(fashion_job({"max_steps": 1000000, "logging_steps": 50}))
    long.cancel()
    with pytest.raises(trainerd.JobCancelled):
        long.wait(timeout=120)
    assert long.resume().state == "QUEUED"
    with pytest.raises(trainerd.FailedPrecondition):
        long.resume()  # not finished
    long.cancel()


def test_tls_with_a_ca(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()

    def make(name, issuer, subject, extension=None):
        key = (f"openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {certs}/{name}.key "
               f"-subj '{subject}'")
        if issuer is None:
            command = f"{key} -x509 -days 2 -out {certs}/{name}.pem"
        else:
            (certs / f"{name}.ext").write_text(extension + "\n")
            command = (f"{key} -out {certs}/{name}.csr && openssl x509 -req -days 2 -in {certs}/{name}.csr "
                       f"-CA {certs}/{issuer}.pem -CAkey {certs}/{issuer}.key -CAcreateserial "
                       f"-extfile {certs}/{name}.ext -out {certs}/{name}.pem")
        subprocess.run(command, shell=True, check=True, capture_output=True)

    make("ca", None, "/CN=trainerd test CA")
    make("server", "ca", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    make("other-ca", None, "/CN=somebody else")
    d = Daemon(str(tmp_path / "root"), ["--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key"])
    try:
        with trainerd.Client(server=d.address, token=d.admin_token, tls_ca=f"{certs}/ca.pem") as c:
            assert c.whoami()["user"] == "admin"
        with trainerd.Client(server=d.address, token=d.admin_token, tls_ca=f"{certs}/other-ca.pem", timeout=3) as c:
            with pytest.raises(trainerd.Unavailable):
                c.whoami()  # a certificate the CA did not sign
        with trainerd.Client(server=d.address, token=d.admin_token, timeout=3) as c:
            with pytest.raises(trainerd.Unavailable):
                c.whoami()  # plaintext to a TLS port
    finally:
        d.stop()


def test_token_lookup_order_and_file_mode_refusal(daemon, tmp_path, monkeypatch):
    home = tmp_path / "home"
    config = home / ".config" / "trainerd"
    config.mkdir(parents=True)
    for name in ("TRAINER_TOKEN", "XDG_CONFIG_HOME", "TRAINERD_DATA_ROOT", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    bob = daemon.add_user("bob")
    carol = daemon.add_user("carol")
    # 4. the data root's admin.token, when readable.
    monkeypatch.setenv("TRAINERD_DATA_ROOT", daemon.root)
    assert trainerd.find_token() == daemon.admin_token
    assert trainerd.Client(server=daemon.address).whoami()["user"] == "admin"
    # 3. ~/.config/trainerd/token before it; one that others may read is refused.
    token_file = config / "token"
    token_file.write_text(carol + "\n")
    token_file.chmod(0o644)
    with pytest.raises(trainerd.PermissionDenied, match="chmod 600"):
        trainerd.find_token()
    token_file.chmod(0o600)
    assert trainerd.Client(server=daemon.address).whoami()["user"] == "carol"
    # 2. $TRAINER_TOKEN before the files; 1. the argument before everything.
    monkeypatch.setenv("TRAINER_TOKEN", bob)
    assert trainerd.Client(server=daemon.address).whoami()["user"] == "bob"
    assert trainerd.Client(server=daemon.address, token=daemon.admin_token).whoami()["user"] == "admin"
    # trainer-cli finds the same token in the same places.
    cli = subprocess.run([os.path.join(BUILD, "client", "trainer-cli"), "--server", daemon.address, "whoami"],
                         capture_output=True, text=True, env=dict(os.environ))
    assert cli.stdout.split()[0] == "bob", cli.stdout + cli.stderr


def test_sweeps_from_python(client):
    sweep = client.submit_sweep({
        "job": fashion_job({"max_steps": 8, "logging_steps": 4}),
        "search_space": {"training_args.learning_rate": {"type": "categorical", "values": [0.01, 0.001]}},
        "objective": {"metric": "eval_loss"},
        "searcher": "grid",
    }, name="py")
    done = sweep.wait(timeout=180)
    assert sweep.state == "SWEEP_COMPLETED"
    assert done.best_trial in (1, 2)
    assert [t["state"] for t in sweep.trials()] == ["TRIAL_COMPLETED", "TRIAL_COMPLETED"]
    with pytest.raises(trainerd.InvalidSpec, match="search_space.training_args.learning_rat"):
        client.submit_sweep({"job": fashion_job({}), "objective": {"metric": "eval_loss"},
                             "search_space": {"training_args.learning_rat": {"type": "uniform", "min": 0, "max": 1}}})


def test_python_m_trainerd_mirrors_the_cli(client, daemon, tmp_path):
    spec_file = tmp_path / "job.json"
    spec_file.write_text(json.dumps(fashion_job({"max_steps": 10, "logging_steps": 5})))
    env = dict(os.environ, TRAINER_SERVER=daemon.address, TRAINER_TOKEN=daemon.admin_token)

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "trainerd", *argv], capture_output=True, text=True, env=env)

    assert run("submit", str(spec_file), "--validate").stdout.strip() == "spec is valid"
    submitted = run("submit", str(spec_file), "--name", "cli", "--follow")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[0]
    assert job_id in run("list").stdout
    status = json.loads(run("status", job_id, "--json").stdout)
    assert status["state"] == "SUCCEEDED" and status["name"] == "cli"
    assert "eval_loss" in run("metrics", job_id, "--name", "eval_loss").stdout
    assert run("status", "j000000000ff").returncode == 3
    assert run("submit", str(tmp_path / "missing.yaml")).returncode in (3, 4)
    assert run("--token", "trd_forged", "list").returncode == 8
    assert run("whoami").stdout.strip() == "admin"
    sweep = client.submit_sweep({"job": fashion_job({"max_steps": 4}), "objective": {"metric": "eval_loss"},
                                 "search_space": {"training_args.learning_rate": {"type": "categorical",
                                                                                 "values": [0.01]}},
                                 "searcher": "grid"})
    sweep.wait(timeout=120)
    table = run("sweep", "status", sweep.id).stdout
    assert "TRIAL_COMPLETED" in table and "training_args.learning_rate=0.01" in table, table


def test_installs_offline_with_pip(tmp_path):
    source = tmp_path / "python"
    shutil.copytree(os.path.join(os.path.dirname(__file__), ".."), source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    env = dict(os.environ, TRAINERD_PROTO_DIR=os.path.join(os.path.dirname(__file__), "..", "..", "proto"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps",
                    "--target", str(tmp_path / "site"), str(source)], check=True, capture_output=True, env=env)
    imported = subprocess.run([sys.executable, "-c", "import trainerd, trainerd._proto.trainer.v1.job_service_pb2_grpc;"
                               "print(trainerd.__file__)"], capture_output=True, text=True, cwd=str(tmp_path),
                              env=dict(os.environ, PYTHONPATH=str(tmp_path / "site")))
    assert imported.stdout.startswith(str(tmp_path / "site")), imported.stderr
