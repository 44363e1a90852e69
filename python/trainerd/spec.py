"""Job specs from Python: a dict, a YAML/JSON file, or `trainerd.spec(...)` with a real
`transformers.TrainingArguments` (or its `to_dict()`), checked field by field against
trainerd's JobSpec before anything is sent.

    import trainerd
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir="out", learning_rate=3e-4, max_steps=500,
                             eval_strategy="steps", eval_steps=100)
    job_spec = trainerd.spec(model={"type": "mlp", "hidden_sizes": [128]}, args=args,
                             train={"path": "train-images-idx3-ubyte.gz",
                                    "labels_path": "train-labels-idx1-ubyte.gz"},
                             eval_split=0.1, metrics=["accuracy"])

HF's arguments that change nothing here (push_to_hub, save_safetensors, ...) are dropped
with the warning trainerd gives, HF's old names (evaluation_strategy) read as the new
ones, and any other argument trainerd does not have is refused by name (InvalidSpec).
Both lists are the ones trainerd itself uses: proto/trainer/v1/hf_arguments.proto.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ._proto.trainer.v1 import hf_arguments_pb2, job_spec_pb2
from .errors import InvalidSpec

SpecLike = Union[Mapping[str, Any], str, "os.PathLike[str]", job_spec_pb2.JobSpec]


def hf_only_arguments() -> Tuple[Dict[str, str], Dict[str, str]]:
    """(ignored, renamed): HF argument names trainerd accepts and ignores (with why), and
    HF's old names with the field each now is, as job_spec.proto's HfOnlyArguments says."""
    ignored: Dict[str, str] = {}
    renamed: Dict[str, str] = {}
    for field in hf_arguments_pb2.HfOnlyArguments.DESCRIPTOR.fields:
        options = field.GetOptions()
        if options.HasExtension(hf_arguments_pb2.hf_ignored_because):
            ignored[field.name] = options.Extensions[hf_arguments_pb2.hf_ignored_because]
        if options.HasExtension(hf_arguments_pb2.hf_renamed_to):
            renamed[field.name] = options.Extensions[hf_arguments_pb2.hf_renamed_to]
    return ignored, renamed


def training_args_dict(args: Any) -> Dict[str, Any]:
    """What a TrainingArguments asks for: a dataclass instance (transformers'
    TrainingArguments) gives the fields it sets to other than their defaults (the rest are
    HF's defaults, which trainerd has too); a mapping (its to_dict()) gives every key
    whose value is not None and, where transformers is installed, not HF's default."""
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        chosen = {}
        values = args.to_dict() if hasattr(args, "to_dict") else dataclasses.asdict(args)
        for field in dataclasses.fields(args):
            if field.name not in values or not field.init:
                continue
            default = field.default
            if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            value = values[field.name]
            if default is dataclasses.MISSING or _plain(value) != _plain(default):
                chosen[field.name] = value
        return {k: v for k, v in chosen.items() if v is not None}
    if hasattr(args, "to_dict") and not isinstance(args, Mapping):
        args = args.to_dict()
    if not isinstance(args, Mapping):
        raise InvalidSpec([f"training_args: expected a TrainingArguments or a mapping, got {type(args).__name__}"])
    defaults = _hf_defaults()  # a to_dict() holds every field: its defaults ask for nothing
    return {k: v for k, v in args.items() if v is not None and not (k in defaults and _plain(v) == defaults[k])}


def _hf_defaults() -> Dict[str, Any]:
    """transformers.TrainingArguments' defaults by field, where transformers is installed."""
    try:
        from transformers import TrainingArguments
    except ImportError:
        return {}
    out = {}
    for field in dataclasses.fields(TrainingArguments):
        if field.default is not dataclasses.MISSING:
            out[field.name] = _plain(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            out[field.name] = field.default_factory()
    return out


def _plain(value: Any) -> Any:
    """Enums (HF's IntervalStrategy, ...) as their values, for comparing with defaults."""
    return getattr(value, "value", value)


def spec(model: Union[str, Mapping[str, Any], None] = None, args: Any = None,
         train: Union[str, Mapping[str, Any], None] = None, eval: Union[str, Mapping[str, Any], None] = None,
         test: Union[str, Mapping[str, Any], None] = None, peft: Any = None,
         metrics: Optional[List[str]] = None, callbacks: Optional[List[Mapping[str, Any]]] = None,
         loss: Optional[Mapping[str, Any]] = None, **data: Any) -> Dict[str, Any]:
    """A job spec as a dict (the YAML form), for Client.submit.

    model: a ModelSpec mapping, or the path of a Hugging Face model folder. args: a
    TrainingArguments (or its to_dict(), or a mapping of training_args). train, eval,
    test: a dataset file's path, or a DatasetSource mapping. peft: a PeftConfig mapping
    or peft's LoraConfig. metrics: ["accuracy", ...]. Other keyword arguments are DataSpec
    fields (eval_split=0.1, max_seq_length=256, tokenizer={...}).
    """
    out: Dict[str, Any] = {}
    if args is not None:
        out["training_args"] = _jsonable(training_args_dict(args))
    if model is not None:
        out["model"] = {"name_or_path": os.fspath(model)} if isinstance(model, (str, os.PathLike)) else dict(model)
    data_section: Dict[str, Any] = dict(data)
    for split, source in (("train", train), ("eval", eval), ("test", test)):
        if source is not None:
            data_section[split] = {"path": os.fspath(source)} if isinstance(source, (str, os.PathLike)) else dict(source)
    if data_section:
        out["data"] = data_section
    if peft is not None:
        if hasattr(peft, "to_dict") and not isinstance(peft, Mapping):
            peft = {k: v for k, v in peft.to_dict().items() if k in job_spec_pb2.PeftConfig.DESCRIPTOR.fields_by_name}
        out["peft"] = _jsonable(dict(peft))
    if metrics is not None:
        out["metrics"] = list(metrics)
    if callbacks is not None:
        out["callbacks"] = [dict(c) for c in callbacks]
    if loss is not None:
        out["loss"] = dict(loss)
    return out


def _jsonable(value: Any) -> Any:
    """Enums as their values, sets and tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return _plain(value)


def load_spec_file(path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """A spec file (YAML or JSON) as a dict, its relative data and model paths resolved
    against the file's folder (as trainer-cli does)."""
    import yaml

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(1 << 20 + 1)
    except FileNotFoundError:
        raise InvalidSpec([f"spec: {path}: no such file"], code="NOT_FOUND") from None
    if len(text) > 1 << 20:
        raise InvalidSpec([f"spec: {path} is larger than 1 MiB"])
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise InvalidSpec([f"spec: {path} is not valid YAML or JSON: {e}"]) from None
    if not isinstance(loaded, dict):
        raise InvalidSpec([f"spec: {path}: expected a mapping of fields"])
    base = os.path.dirname(os.path.abspath(path))
    _resolve_paths(loaded, base)
    return loaded


def _resolve_paths(spec_dict: Dict[str, Any], base: str) -> None:
    def resolve(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            value = section[key]
            if value and not value.startswith("user://") and not os.path.isabs(value):
                section[key] = os.path.normpath(os.path.join(base, value))

    data = spec_dict.get("data")
    if isinstance(data, dict):
        for split in ("train", "eval", "test"):
            resolve(data.get(split), "path")
            resolve(data.get(split), "labels_path")
    resolve(spec_dict.get("model"), "path")
    resolve(spec_dict.get("model"), "name_or_path")


def to_job_spec(value: SpecLike) -> Tuple[job_spec_pb2.JobSpec, List[str]]:
    """The JobSpec message for a dict, a file path or a JobSpec, and the warnings (HF
    arguments ignored). Raises InvalidSpec naming every field that is unknown or of the
    wrong type."""
    if isinstance(value, job_spec_pb2.JobSpec):
        return value, []
    if isinstance(value, (str, os.PathLike)):
        value = load_spec_file(value)
    if not isinstance(value, Mapping):
        raise InvalidSpec([f"spec: expected a mapping, a file path or a JobSpec, got {type(value).__name__}"])
    problems: List[str] = []
    warned: List[str] = []
    checked = _check_message(dict(value), job_spec_pb2.JobSpec.DESCRIPTOR, "", problems, warned)
    if problems:
        raise InvalidSpec(problems)
    message = job_spec_pb2.JobSpec()
    try:
        json_format.ParseDict(checked, message)
    except json_format.ParseError as e:
        raise InvalidSpec([f"spec: {e}"]) from None
    return message, warned


_INTEGER_TYPES = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
                  FieldDescriptor.CPPTYPE_UINT64}


def _check_message(value: Any, descriptor: Descriptor, path: str, problems: List[str], warned: List[str]) -> Any:
    """`value` checked against `descriptor`, with HF's aliases applied to training_args."""
    if descriptor.full_name == "google.protobuf.Struct":
        if not isinstance(value, Mapping):
            problems.append(f"{path or 'spec'}: expected a mapping")
        return value
    if not isinstance(value, Mapping):
        problems.append(f"{path or 'spec'}: expected a mapping of fields")
        return {}
    hf = descriptor is job_spec_pb2.TrainingArguments.DESCRIPTOR
    ignored, renamed = hf_only_arguments() if hf else ({}, {})
    out: Dict[str, Any] = {}
    for key, child in value.items():
        key = str(key)
        if key in renamed:
            now = renamed[key]
            warned.append(f"{path}.{key}: HF's old name for {now}; read as {now}")
            key = now
        at = f"{path}.{key}" if path else key
        field = descriptor.fields_by_name.get(key)
        if field is None:
            if key in ignored:
                warned.append(f"{at}: accepted and ignored ({ignored[key]})")
            else:
                problems.append(f"{at}: unknown field")
            continue
        out[key] = _check_field(child, field, at, problems, warned)
    return out


def _check_field(value: Any, field: FieldDescriptor, at: str, problems: List[str], warned: List[str]) -> Any:
    if field.label == FieldDescriptor.LABEL_REPEATED:
        if not isinstance(value, (list, tuple)):
            problems.append(f"{at}: expected a list")
            return []
        return [_check_value(v, field, f"{at}[{i}]", problems, warned) for i, v in enumerate(value)]
    return _check_value(value, field, at, problems, warned)


def _check_value(value: Any, field: FieldDescriptor, at: str, problems: List[str], warned: List[str]) -> Any:
    value = _plain(value)
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_MESSAGE:
        return _check_message(value, field.message_type, at, problems, warned)
    if kind in _INTEGER_TYPES:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            problems.append(f"{at}: expected an integer, got {value!r}")
            return 0
        return int(value)
    if kind in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{at}: expected a number, got {value!r}")
            return 0.0
        return float(value)
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            problems.append(f"{at}: expected true or false, got {value!r}")
            return False
        return value
    if kind == FieldDescriptor.CPPTYPE_STRING:
        if not isinstance(value, (str, os.PathLike)):
            problems.append(f"{at}: expected a string, got {value!r}")
            return ""
        return os.fspath(value)
    return value


def warn_all(messages: List[str]) -> None:
    for message in messages:
        warnings.warn(message, stacklevel=3)
