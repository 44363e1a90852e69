"""python -m trainerd: trainer-cli's main verbs, for machines without the C++ build.

Exit status as trainer-cli's: 0 ok, 1 error, 2 usage, 3 not found, 4 invalid spec,
5 trainerd unreachable, 6 the followed job failed, 7 it was cancelled, 8 not
authenticated or not allowed.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, List, Optional

from google.protobuf import json_format

from .client import Client
from .errors import (InvalidSpec, JobCancelled, JobFailed, NotFound, PermissionDenied, TrainerdError,
                     Unauthenticated, Unavailable)


def _json(message: Any) -> str:
    return json_format.MessageToJson(message, preserving_proto_field_name=True, including_default_value_fields=True,
                                   indent=None)


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainerd", description="Submit, follow and manage trainerd jobs.")
    p.add_argument("--server", help="trainerd address (default $TRAINER_SERVER or 127.0.0.1:50051)")
    p.add_argument("--token", help="access token (default: as trainer-cli finds it)")
    p.add_argument("--tls-ca", help="CA certificate to verify trainerd with (default $TRAINER_TLS_CA)")
    p.add_argument("--tls-cert", help="client certificate")
    p.add_argument("--tls-key", help="the client certificate's key")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds each call may take")
    verbs = p.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("submit", help="submit a job spec; prints the job id")
    s.add_argument("spec")
    s.add_argument("--name")
    s.add_argument("--priority", type=int)
    s.add_argument("--ranks", type=int)
    s.add_argument("--gpus-per-rank", type=int)
    s.add_argument("--time-limit")
    s.add_argument("--max-restarts", type=int)
    s.add_argument("--validate", action="store_true", help="check only; queue nothing")
    s.add_argument("--follow", action="store_true", help="print its logs and exit with its outcome")
    s.add_argument("--json", action="store_true")
    ls = verbs.add_parser("list", help="list jobs, newest first")
    ls.add_argument("--state", action="append")
    ls.add_argument("--mine", action="store_true")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true")
    for verb, text in (("status", "everything about one job"), ("watch", "a progress bar until the job ends"),
                       ("wait", "wait for a job to end; exit with its outcome"),
                       ("cancel", "cancel a job"), ("checkpoints", "list a job's checkpoints")):
        v = verbs.add_parser(verb, help=text)
        v.add_argument("job")
        v.add_argument("--json", action="store_true")
    lg = verbs.add_parser("logs", help="print a job's logs")
    lg.add_argument("job")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--rank", type=int)
    lg.add_argument("--since", type=int)
    lg.add_argument("--tail", type=int)
    lg.add_argument("--level", default="")
    m = verbs.add_parser("metrics", help="a job's metric history")
    m.add_argument("job")
    m.add_argument("--name")
    m.add_argument("--split")
    m.add_argument("--json", action="store_true")
    r = verbs.add_parser("resume", help="run a finished job again from a checkpoint")
    r.add_argument("job")
    r.add_argument("--checkpoint", type=int, default=0)
    r.add_argument("--stop-at-step", type=int, default=0)
    d = verbs.add_parser("delete", help="delete a finished job's records")
    d.add_argument("job")
    d.add_argument("--files", action="store_true")
    verbs.add_parser("whoami", help="the user the token belongs to")
    sw = verbs.add_parser("sweep", help="hyperparameter sweeps").add_subparsers(dest="sweep_verb", required=True)
    ss = sw.add_parser("submit")
    ss.add_argument("spec")
    ss.add_argument("--name")
    ss.add_argument("--validate", action="store_true")
    sl = sw.add_parser("list")
    sl.add_argument("--mine", action="store_true")
    for verb in ("status", "cancel"):
        sv = sw.add_parser(verb)
        sv.add_argument("sweep")
        sv.add_argument("--json", action="store_true")
    return p


def _run(args: argparse.Namespace, client: Client) -> int:
    verb = args.verb
    if verb == "submit":
        job = client.submit(args.spec, name=args.name, priority=args.priority, ranks=args.ranks,
                            gpus_per_rank=args.gpus_per_rank, time_limit=args.time_limit,
                            max_restarts=args.max_restarts, validate_only=args.validate)
        if args.validate:
            print("spec is valid")
            return 0
        print(_json(job.message) if args.json else job.id, flush=True)
        if args.follow:
            for line in job.logs(follow=True):
                print(line.text, flush=True)
            job.wait()
        return 0
    if verb == "list":
        rows = [["ID", "NAME", "OWNER", "STATE", "STEP", "LOSS"]]
        listed = []
        for job in client.jobs(state=args.state, mine=args.mine):
            if len(listed) >= args.limit:
                break
            listed.append(job)
            st = job.message.progress
            rows.append([job.id, job.message.name, job.message.owner, job.state,
                         f"{st.step}/{st.max_steps}" if st.max_steps else "-",
                         f"{st.loss:.4f}" if st.HasField("loss") else "-"])
        print("\n".join(_json(j.message) for j in listed) if args.json else _table(rows))
        return 0
    if verb == "whoami":
        print(client.whoami()["user"])
        return 0
    if verb == "sweep":
        return _run_sweep(args, client)
    job = client.job(args.job)
    if verb == "status":
        print(_json(job.message) if args.json else "\n".join(f"{k}: {v}" for k, v in vars(job.status()).items()))
    elif verb == "watch":
        job.watch()
    elif verb == "wait":
        job.wait()
    elif verb == "cancel":
        print(f"job {job.id} {job.cancel().state}")
    elif verb == "checkpoints":
        for c in job.checkpoints():
            print(json.dumps(c) if args.json else f"{c['step']:>8}  {'*' if c['is_best'] else ' '} {c['path']}")
    elif verb == "logs":
        for line in job.logs(follow=args.follow, rank=args.rank, since=args.since, tail=args.tail, level=args.level):
            print(line.text, flush=True)
    elif verb == "metrics":
        points = job.metrics(args.name, args.split)
        if args.json:
            print(json.dumps(points))
        else:
            print(_table([["STEP", "SPLIT", "NAME", "VALUE"]] +
                         [[str(p["step"]), p["split"], p["name"], f"{p['value']:.6g}"] for p in points]))
    elif verb == "resume":
        print(f"job {job.id} {job.resume(args.checkpoint, args.stop_at_step).state}")
    elif verb == "delete":
        job.delete(files=args.files)
        print(f"deleted {job.id}")
    return 0


def _run_sweep(args: argparse.Namespace, client: Client) -> int:
    verb = args.sweep_verb
    if verb == "submit":
        sweep = client.submit_sweep(args.spec, name=args.name, validate_only=args.validate)
        print("sweep is valid" if args.validate else sweep.id)
    elif verb == "list":
        rows = [["ID", "NAME", "STATE", "TRIALS", "BEST"]]
        for s in client.sweeps(mine=args.mine):
            m = s.message
            rows.append([m.id, m.name, s.state, f"{m.trials_ended}/{m.spec.n_trials}",
                         f"{m.best_objective:.6g}" if m.best_trial else "-"])
        print(_table(rows))
    elif verb == "status":
        sweep = client.sweep(args.sweep)
        if args.json:
            print(_json(sweep.message))
        else:
            m = sweep.message
            print(f"sweep {m.id} ({m.name}) {sweep.state}: {m.trials_ended} of {m.spec.n_trials} trial(s) ended")
            rows = [["TRIAL", "JOB", "STATE", "RUNG", "STEPS", m.spec.objective.metric, "VALUES", "DECISION"]]
            for t in sweep.trials():
                rows.append([str(t["number"]), t["job_id"] or "-", t["state"], str(t["rung"]), str(t["steps"]),
                             "-" if t["objective"] is None else f"{t['objective']:.6g}", " ".join(t["values"]),
                             t["error"] or (t["decisions"][-1] if t["decisions"] else "-")])
            print(_table(rows))
    elif verb == "cancel":
        print(f"sweep {args.sweep} {client.sweep(args.sweep).cancel()}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with Client(server=args.server, token=args.token, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
                    tls_key=args.tls_key, timeout=args.timeout) as client:
            return _run(args, client)
    except TrainerdError as e:
        print(f"python -m trainerd: {e.message}", file=sys.stderr)
        for kind, code in ((NotFound, 3), (InvalidSpec, 4), (Unavailable, 5), (JobFailed, 6), (JobCancelled, 7),
                           (Unauthenticated, 8), (PermissionDenied, 8)):
            if isinstance(e, kind):
                return code
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
