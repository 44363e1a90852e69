#!/usr/bin/env python3
"""From an HF training script to trainerd in a few lines: the TrainingArguments you have,
the data and model as a job spec, then submit, follow and read the results.

    PYTHONPATH=build/python /usr/bin/python3 examples/submit_from_python.py

(or `pip install --no-build-isolation --no-index ./python` in a virtual environment made
with --system-site-packages, then plain `python3 examples/submit_from_python.py`).
"""
import trainerd

try:  # a real transformers.TrainingArguments where transformers is installed ...
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="runs/fmnist-mlp", learning_rate=2e-3, max_steps=60,
                             per_device_train_batch_size=64, eval_strategy="steps", eval_steps=30, logging_steps=10)
except ImportError:  # ... else the same arguments as a mapping (what args.to_dict() holds)
    args = {"learning_rate": 2e-3, "max_steps": 60, "per_device_train_batch_size": 64, "eval_strategy": "steps",
            "eval_steps": 30, "logging_steps": 10}

FASHION = "/usr/share/datasets/fashion-mnist"
spec = trainerd.spec(
    model={"type": "mlp", "hidden_sizes": [128]},
    args=args,
    train={"path": f"{FASHION}/train-images-idx3-ubyte.gz", "labels_path": f"{FASHION}/train-labels-idx1-ubyte.gz",
           "limit": 5000},
    eval={"path": f"{FASHION}/t10k-images-idx3-ubyte.gz", "labels_path": f"{FASHION}/t10k-labels-idx1-ubyte.gz",
          "limit": 1000},
    mean=0.2860, std=0.3530, metrics=["accuracy"])

client = trainerd.Client()              # TRAINER_SERVER / TRAINER_TOKEN / ... as trainer-cli
job = client.submit(spec, name="fmnist-from-python")
print("submitted", job.id)
status = job.watch()                    # a progress bar until it ends; raises JobFailed with the reason
print("eval:", {k: round(v, 4) for k, v in status.eval_metrics.items()})
print("eval_accuracy by step:", [(p["step"], round(p["value"], 4)) for p in job.metrics("eval_accuracy")])
print("output:", job.output_dir)
