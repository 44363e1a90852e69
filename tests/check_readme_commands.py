#!/usr/bin/env python3
"""Runs every command of the README and of examples/ as a user would, in order, and
fails on the first that fails.

  check_readme_commands.py SOURCE_DIR BUILD_DIR

What runs:
- every ```sh block of README.md, in order, in one bash session (so the trainerd the
  quickstart starts serves the blocks after it, and $JOB carries over), except a block
  whose lines are all `make ...` (the README's two commands: this test runs inside
  `make test`) and a block right after a `<!-- not run: why -->` line;
- then every command in the examples' comments (`#   build/...` lines): each example
  on its own with trainer-worker, and submitted to the trainerd the README started.

Short settings are allowed: a command that names an example and sets no max_steps gets
the example's SHORT settings appended. The session runs in a scratch folder whose
build/, examples/ and tests/ point at the real ones, with its own HOME and data root
(TRAINERD_DATA_ROOT), inside a network namespace of its own when one can be made (so
that the README's default port 50051 is free), and every background process it started
is stopped when it ends.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

SHORT = {
    "fashion-mnist-cnn.yaml": "--set training_args.max_steps=30 --set data.eval.limit=1000",
    "tiny-lm.yaml": ("--set training_args.max_steps=20 --set training_args.eval_steps=10 "
                     "--set training_args.save_steps=10 --set data.tokenizer.vocab_size=400"),
    "llama-finetune.yaml": ("--set training_args.max_steps=10 --set training_args.eval_steps=5 "
                            "--set training_args.save_steps=5"),
    "bert-classify.yaml": "--set training_args.max_steps=10",
    "llama-lora.yaml": ("--set training_args.max_steps=10 --set training_args.eval_steps=5 "
                        "--set training_args.save_steps=5"),
}


def readme_blocks(path):
    """(line number, text) of each ```sh block that is to run."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            body = lines[start + 1:j]
            skipped = any("<!-- not run:" in lines[k] for k in range(max(0, start - 2), start))
            commands = [l for l in body if l.strip() and not l.strip().startswith("#")]
            own_entry_points = commands and all(l.strip().startswith("make ") for l in commands)
            if not skipped and not own_entry_points:
                blocks.append((start + 1, "\n".join(body)))
            i = j
        i += 1
    return blocks


def example_commands(examples_dir):
    """(file, command) of each `#   build/...` line in the examples' comments."""
    out = []
    for name in sorted(os.listdir(examples_dir)):
        if not name.endswith(".yaml"):
            continue
        for line in open(os.path.join(examples_dir, name), encoding="utf-8"):
            m = re.match(r"^#   (build/\S+ .*)$", line.rstrip("\n"))
            if m:
                out.append((name, m.group(1)))
    return out


def shortened(command):
    """The command with its example's short settings, unless it sets max_steps itself."""
    if "max_steps" in command or "--validate-only" in command:
        return command
    for example, settings in SHORT.items():
        if "examples/" + example in command:
            # Before a trailing comment or `&`.
            head, sep, tail = command.partition(" #")
            return f"{head.rstrip()} {settings}{sep}{tail}"
    return command


def session_script(source, blocks, examples):
    parts = ["set -euo pipefail",
             # Every background job of this session (trainerd) is stopped at the end.
             "trap 'kill $(jobs -p) 2>/dev/null || true; wait || true' EXIT"]
    for line, text in blocks:
        parts.append(f"echo '=== README.md line {line}'")
        parts.append("\n".join(shortened(l) if "examples/" in l else l for l in text.split("\n")))
    for name, command in examples:
        parts.append(f"echo {shlex.quote('=== examples/' + name + ': ' + command)}")
        parts.append(shortened(command))
    parts.append("echo '=== every command ran'")
    return "\n".join(parts) + "\n"


def main():
    source, build = (os.path.abspath(a) for a in sys.argv[1:3])
    blocks = readme_blocks(os.path.join(source, "README.md"))
    examples = example_commands(os.path.join(source, "examples"))
    if len(blocks) < 5 or len(examples) < 10:
        print(f"found only {len(blocks)} README blocks and {len(examples)} example commands")
        return 1
    with tempfile.TemporaryDirectory(prefix="trainerd-readme-") as work:
        for name, target in (("build", build), ("examples", os.path.join(source, "examples")),
                             ("tests", os.path.join(source, "tests"))):
            os.symlink(target, os.path.join(work, name))
        os.makedirs(os.path.join(work, "home"))
        script = os.path.join(work, "session.sh")
        open(script, "w", encoding="utf-8").write(session_script(source, blocks, examples))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TRAINER_", "TRAINERD_", "XDG_"))}
        env.update(HOME=os.path.join(work, "home"), TRAINERD_DATA_ROOT=os.path.join(work, "state"))
        isolate = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
        probe = subprocess.run(isolate + ["ip", "link", "set", "lo", "up"], capture_output=True)
        if probe.returncode == 0:
            command = isolate + ["bash", "-c", f"ip link set lo up && exec bash {shlex.quote(script)}"]
        else:
            print("no network namespace here; the README's default port must be free")
            command = ["bash", script]
        run = subprocess.run(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=540)
        print(run.stdout[-30000:])
        if run.returncode != 0:
            print(f"FAILED: exit {run.returncode} (the last '===' line above is the command that failed)")
            return 1
    print(f"{len(blocks)} README blocks and {len(examples)} example commands ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
