#!/usr/bin/env python3
"""Tern's example trainer: a tiny model trained by SGD with momentum, standard library only.

It checkpoints the way Tern expects (DESIGN.md §5): every K steps a step directory
``<ckpt-dir>/step-<NNNNNNNN>/`` with weight shards, optimizer state and ``metadata.json``, all
fsync'd, and then, last, the ``TERN_COMPLETE`` marker. It resumes from ``--resume-from`` (Tern's
``TERN_RESUME_FROM``) and is deterministic: training N steps straight and training with a stop and
a resume anywhere in between write the same bytes. See README.md in this directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import operator
import os
import re
import shutil
import signal
import sys
import time
import zlib
from array import array

FORMAT = "tern-example-trainer/v1"
MARKER = "TERN_COMPLETE"
METADATA = "metadata.json"
OPTIMIZER = "optimizer.bin"
FROZEN_BASE = "base-frozen.bin"
STEP_DIR = re.compile(r"^step-(\d+)$")
MIB = 1 << 20
CHUNK = 4 * MIB  # filler and frozen-base bytes are generated and written this much at a time

# Exit codes (README.md, "Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # bad flags, or a resume directory that is incomplete or inconsistent
EXIT_SIGTERM = 143  # 128 + SIGTERM, after writing a checkpoint at the current step

# Knobs that decide the checkpoint's shapes and data; a resume must agree with the checkpoint on
# every one (a flag left unset takes the checkpoint's value).
MODEL_KEYS = ("seed", "features", "hidden", "batch_size", "model_bytes", "shards", "frozen_base_bytes")
DEFAULTS = {
    "steps": 100, "checkpoint_every": 10, "seed": 0, "lr": 0.05, "momentum": 0.9,
    "features": 16, "hidden": 32, "batch_size": 16, "model_mb": 1.0, "frozen_base_mb": 0.0,
    "shards": 4, "keep": 0, "step_delay": 0.0, "log_every": 1,
}
# Environment variables read when the flag is absent (flags override the environment).
ENV = {
    "steps": "TRAINER_STEPS", "checkpoint_every": "TRAINER_CHECKPOINT_EVERY", "seed": "TRAINER_SEED",
    "lr": "TRAINER_LR", "model_mb": "TRAINER_MODEL_MB", "frozen_base_mb": "TRAINER_FROZEN_BASE_MB",
    "shards": "TRAINER_SHARDS", "keep": "TRAINER_KEEP", "step_delay": "TRAINER_STEP_DELAY",
    "log_every": "TRAINER_LOG_EVERY", "ckpt_dir": "TERN_CHECKPOINT_DIR", "resume_from": "TERN_RESUME_FROM",
}


class Refusal(Exception):
    """A resume directory or a flag we will not work with (exit code 2)."""


def log(message: str) -> None:
    print(message, flush=True)


def warn(message: str) -> None:
    print("train.py: " + message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Deterministic bytes. Everything random is SHAKE-256 of a label naming the seed and the use, so it
# is the same on every machine and Python version, and the batch for step s needs no loader state.

def random_bytes(label: str, count: int) -> bytes:
    return hashlib.shake_256(("tern-example-trainer/" + label).encode()).digest(count) if count else b""


def uniforms(label: str, count: int) -> list[float]:
    """`count` numbers in [-1, 1), multiples of 2^-15: exact in float32, no libm involved."""
    values = array("H")
    values.frombytes(random_bytes(label, 2 * count))
    if sys.byteorder == "big":
        values.byteswap()
    return [(v - 32768) / 32768.0 for v in values]


# Filler weights: random float32 bit patterns with the exponent forced to 2^-7, so every value is
# finite, in ±[2^-7, 2^-6). Bytes 2 and 3 of each little-endian word hold the exponent.
_BYTE3 = bytes((b & 0x80) | 0x3C for b in range(256))
_BYTE2 = bytes(b & 0x7F for b in range(256))


def filler_chunks(label: str, count: int):
    """Yields `count` bytes (a multiple of 4) of valid little-endian float32 values, CHUNK at a time."""
    index = 0
    while count > 0:
        size = min(CHUNK, count)
        chunk = bytearray(random_bytes("%s/%d" % (label, index), size))
        chunk[3::4] = chunk[3::4].translate(_BYTE3)
        chunk[2::4] = chunk[2::4].translate(_BYTE2)
        yield chunk
        count -= size
        index += 1


def to_le(values: array) -> bytes:
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def from_le(data: bytes) -> array:
    values = array("f")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values


# ---------------------------------------------------------------------------------------------
# The model: y = w2 · relu(W1 x + b1) + b2, on x in [-1, 1)^features, fit to a fixed random
# teacher of the same form plus a little noise. Only +, -, *, / and math.fsum (exactly rounded) are
# used, so every IEEE-754 machine computes the same bits.

class Model:
    def __init__(self, config: dict):
        self.features = config["features"]
        self.hidden = config["hidden"]
        self.batch_size = config["batch_size"]
        self.seed = config["seed"]
        f, h = self.features, self.hidden
        # The trainable tensors, in the order of the flat parameter vector.
        self.layout = [("layer1.weight", [h, f]), ("layer1.bias", [h]), ("layer2.weight", [h]), ("layer2.bias", [1])]
        self.size = h * f + h + h + 1
        teacher_units = 4
        t1 = uniforms("teacher1/%d" % self.seed, teacher_units * f)
        self.teacher1 = [t1[u * f:(u + 1) * f] for u in range(teacher_units)]
        self.teacher2 = uniforms("teacher2/%d" % self.seed, teacher_units)

    def layout_json(self) -> list:
        start, out = 0, []
        for name, shape in self.layout:
            count = math.prod(shape)
            out.append({"name": name, "shape": shape, "start": start, "count": count})
            start += count
        return out

    def initial(self) -> tuple[array, array]:
        f, h = self.features, self.hidden
        w1 = [u * 0.25 for u in uniforms("init1/%d" % self.seed, h * f)]
        w2 = [u * 0.25 for u in uniforms("init2/%d" % self.seed, h)]
        params = array("f", w1 + [0.0] * h + w2 + [0.0])
        return params, array("f", bytes(4 * self.size))

    def batch(self, step: int) -> tuple[list[list[float]], list[float]]:
        f, b = self.features, self.batch_size
        flat = uniforms("data/%d/%d" % (self.seed, step), b * f)
        noise = uniforms("noise/%d/%d" % (self.seed, step), b)
        xs = [flat[i * f:(i + 1) * f] for i in range(b)]
        ys = []
        for x, n in zip(xs, noise):
            hidden = [max(0.0, math.fsum(map(operator.mul, row, x))) for row in self.teacher1]
            ys.append(math.fsum(map(operator.mul, self.teacher2, hidden)) + n * 0.05)
        return xs, ys

    def step(self, params: array, momentum: array, step: int, lr: float, mu: float) -> tuple[array, array, float]:
        """One SGD-with-momentum step on the batch for `step`. Pure: float32 state in, float32 state out."""
        f, h, b = self.features, self.hidden, self.batch_size
        p = params.tolist()
        w1 = [p[k * f:(k + 1) * f] for k in range(h)]
        b1 = p[h * f:h * f + h]
        w2 = p[h * f + h:h * f + 2 * h]
        b2 = p[-1]
        xs, ys = self.batch(step)

        # Forward.
        pre, act, errors = [], [], []
        for x, y in zip(xs, ys):
            z = [math.fsum(map(operator.mul, w1[k], x)) + b1[k] for k in range(h)]
            a = [v if v > 0.0 else 0.0 for v in z]
            prediction = math.fsum(map(operator.mul, w2, a)) + b2
            pre.append(z)
            act.append(a)
            errors.append(prediction - y)
        loss = math.fsum(e * e for e in errors) / (2 * b)

        # Backward (mean squared error / 2).
        d_out = [e / b for e in errors]
        g_b2 = math.fsum(d_out)
        g_w2 = [math.fsum(d_out[i] * act[i][k] for i in range(b)) for k in range(h)]
        d_hidden = [[d_out[i] * w2[k] if pre[i][k] > 0.0 else 0.0 for k in range(h)] for i in range(b)]
        columns = [[xs[i][j] for i in range(b)] for j in range(f)]
        g_w1, g_b1 = [], []
        for k in range(h):
            dk = [d_hidden[i][k] for i in range(b)]
            g_b1.append(math.fsum(dk))
            g_w1.extend(math.fsum(map(operator.mul, dk, columns[j])) for j in range(f))
        grads = g_w1 + g_b1 + g_w2 + [g_b2]

        # Update; the stored float32 values are the state.
        new_momentum = array("f", [mu * m + g for m, g in zip(momentum.tolist(), grads)])
        new_params = array("f", [w - lr * m for w, m in zip(p, new_momentum.tolist())])
        return new_params, new_momentum, loss


# ---------------------------------------------------------------------------------------------
# Checkpoints.

def step_name(step: int) -> str:
    return "step-%08d" % step


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str, chunks) -> dict:
    """Writes the chunks to `path`, fsyncs it, and returns its size and CRC-32."""
    size, crc = 0, 0
    with open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
        handle.flush()
        os.fsync(handle.fileno())
    return {"path": os.path.basename(path), "bytes": size, "crc32": "%08x" % crc}


def is_complete(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, MARKER))


def shard_plan(model: Model, config: dict) -> list[dict]:
    """How the flat trainable vector and the filler split over the weight shards.

    The shards are near-equal in size (together `model_bytes`). The trainable vector is cut into
    `shards` near-equal contiguous parts, part i at the start of shard i, so every shard changes
    from one checkpoint to the next; the rest of each shard is frozen filler generated from the seed.
    """
    n = config["shards"]
    total = config["model_bytes"] // 4  # floats, at least model.size
    plan, start = [], 0
    for i in range(n):
        count = model.size // n + (1 if i < model.size % n else 0)
        floats = total // n + (1 if i < total % n else 0)  # >= count because total >= model.size
        plan.append({
            "file": "model-%05d-of-%05d.bin" % (i + 1, n),
            "trainable": [start, start + count],
            "filler_bytes": 4 * (floats - count),
            "bytes": 4 * floats,
        })
        start += count
    return plan


class Hooks:
    """Test seams: a simulated crash partway through a checkpoint write."""
    crash_in_checkpoint_step: int | None = None
    crash_exit_code: int = 1


def write_checkpoint(ckpt_dir: str, step: int, loss: float | None, params: array, momentum: array,
                     model: Model, config: dict) -> str:
    """Writes step directory `step`: data files, fsync each, metadata, fsync the directory, then the
    marker (temp file, fsync, rename), then fsync the directory again. Returns the directory."""
    os.makedirs(ckpt_dir, exist_ok=True)
    directory = os.path.join(ckpt_dir, step_name(step))
    if os.path.lexists(directory):
        # A leftover of a crash, or a checkpoint we are rewriting: the marker goes first, so the
        # directory is never complete while it holds a mix of old and new files.
        marker = os.path.join(directory, MARKER)
        if os.path.lexists(marker):
            os.unlink(marker)
            fsync_directory(directory)
        if os.path.isdir(directory) and not os.path.islink(directory):
            shutil.rmtree(directory)
        else:
            os.unlink(directory)
    os.mkdir(directory)
    fsync_directory(ckpt_dir)

    files = []
    plan = shard_plan(model, config)
    for index, shard in enumerate(plan):
        start, end = shard["trainable"]

        def chunks(start=start, end=end, shard=shard, index=index):
            yield to_le(params[start:end])
            yield from filler_chunks("filler/%d/%d" % (config["seed"], index + 1), shard["filler_bytes"])

        files.append(write_file(os.path.join(directory, shard["file"]), chunks()))
        if Hooks.crash_in_checkpoint_step == step:
            warn("simulated crash while writing the checkpoint at step %d (exit %d)" % (step, Hooks.crash_exit_code))
            os._exit(Hooks.crash_exit_code)
    files.append(write_file(os.path.join(directory, OPTIMIZER), [to_le(momentum)]))
    if config["frozen_base_bytes"]:
        files.append(write_file(os.path.join(directory, FROZEN_BASE),
                                filler_chunks("base/%d" % config["seed"], config["frozen_base_bytes"])))

    metadata = {
        "format": FORMAT,
        "step": step,
        "loss": loss,
        "seed": config["seed"],
        "lr": config["lr"],
        "momentum": config["momentum"],
        "features": config["features"],
        "hidden": config["hidden"],
        "batch_size": config["batch_size"],
        "model_bytes": config["model_bytes"],
        "shards": config["shards"],
        "frozen_base_bytes": config["frozen_base_bytes"],
        "dtype": "float32",
        "byte_order": "little",
        "tensors": model.layout_json(),
        "weight_shards": plan,
        "optimizer": {"type": "sgd-momentum", "file": OPTIMIZER, "buffers": "momentum, same layout as the trainable vector"},
        "frozen_base": FROZEN_BASE if config["frozen_base_bytes"] else None,
        "rng_state": None,
        "data": "the batch for step s is SHAKE-256 of (seed, s): there is no loader or RNG state to restore",
        "files": files,
    }
    text = json.dumps(metadata, sort_keys=True, indent=1) + "\n"
    write_file(os.path.join(directory, METADATA), [text.encode()])
    fsync_directory(directory)

    # The marker, last: a temp name, fsync, then an atomic rename, so it never exists half-written.
    temporary = os.path.join(directory, "." + MARKER + ".tmp")
    write_file(temporary, [("step %d\n" % step).encode()])
    os.rename(temporary, os.path.join(directory, MARKER))
    fsync_directory(directory)
    fsync_directory(ckpt_dir)
    return directory


def prune(ckpt_dir: str, keep: int) -> None:
    """Deletes complete step directories beyond the newest `keep` (marker first, like Tern's GC).
    Directories without a marker are left alone: they may be a write in progress."""
    if keep <= 0:
        return
    complete = []
    for name in os.listdir(ckpt_dir):
        match = STEP_DIR.match(name)
        if match and is_complete(os.path.join(ckpt_dir, name)):
            complete.append((int(match.group(1)), name))
    complete.sort()
    for _, name in complete[:-keep]:
        directory = os.path.join(ckpt_dir, name)
        os.unlink(os.path.join(directory, MARKER))
        fsync_directory(directory)
        shutil.rmtree(directory)
    if complete[:-keep]:
        fsync_directory(ckpt_dir)


def read_exact(path: str, offset: int, count: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(count)
    if len(data) != count:
        raise Refusal("%s is shorter than its metadata says" % path)
    return data


def file_crc(path: str) -> str:
    crc = 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(CHUNK)
            if not chunk:
                return "%08x" % crc
            crc = zlib.crc32(chunk, crc)


def load_checkpoint(directory: str) -> dict:
    """Reads and checks a step directory; raises Refusal when it is incomplete or inconsistent."""
    if not os.path.isdir(directory):
        raise Refusal("resume directory %s does not exist or is not a directory" % directory)
    marker = os.path.join(directory, MARKER)
    if not os.path.isfile(marker):
        raise Refusal("resume directory %s has no %s marker: the checkpoint is incomplete (a write was "
                      "interrupted); resume from a complete one" % (directory, MARKER))
    try:
        with open(os.path.join(directory, METADATA), "rb") as handle:
            metadata = json.loads(handle.read())
    except (OSError, ValueError) as error:
        raise Refusal("cannot read %s in %s: %s" % (METADATA, directory, error))
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise Refusal("%s in %s is not %s" % (METADATA, directory, FORMAT))
    step = metadata.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise Refusal("%s in %s has no valid step" % (METADATA, directory))
    with open(marker, "rb") as handle:
        marker_text = handle.read().decode("utf-8", "replace").strip()
    if marker_text and marker_text != "step %d" % step:
        raise Refusal("the marker in %s says %r but %s says step %d" % (directory, marker_text, METADATA, step))
    match = STEP_DIR.match(os.path.basename(os.path.normpath(directory)))
    if match and int(match.group(1)) != step:
        raise Refusal("%s is named for step %d but %s says step %d" % (directory, int(match.group(1)), METADATA, step))
    for key in MODEL_KEYS:
        value = metadata.get(key)
        minimum = 0 if key in ("seed", "frozen_base_bytes") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise Refusal("%s in %s has an invalid %s: %r" % (METADATA, directory, key, value))
    for entry in metadata.get("files", []):
        path = os.path.join(directory, entry["path"])
        if not os.path.isfile(path) or os.path.getsize(path) != entry["bytes"]:
            raise Refusal("%s is missing or has the wrong size (expected %d bytes)" % (path, entry["bytes"]))
        if file_crc(path) != entry["crc32"]:
            raise Refusal("%s does not match its CRC-32 in %s (corrupt?)" % (path, METADATA))

    config = {key: metadata[key] for key in MODEL_KEYS}
    model = Model(config)
    expected = shard_plan(model, config)
    if metadata.get("weight_shards") != expected or metadata.get("tensors") != model.layout_json():
        raise Refusal("the shapes in %s do not match its features/hidden/model_bytes/shards" % METADATA)
    listed = {entry["path"] for entry in metadata.get("files", [])}
    needed = {shard["file"] for shard in expected} | {OPTIMIZER} | ({FROZEN_BASE} if config["frozen_base_bytes"] else set())
    if not needed <= listed:
        raise Refusal("%s does not list %s" % (METADATA, ", ".join(sorted(needed - listed))))
    parts = []
    for shard in expected:
        start, end = shard["trainable"]
        parts.append(read_exact(os.path.join(directory, shard["file"]), 0, 4 * (end - start)))
    params = from_le(b"".join(parts))
    momentum = from_le(read_exact(os.path.join(directory, OPTIMIZER), 0, 4 * model.size))
    if os.path.getsize(os.path.join(directory, OPTIMIZER)) != 4 * model.size:
        raise Refusal("%s has the wrong size" % os.path.join(directory, OPTIMIZER))
    return {"step": step, "config": config, "lr": metadata.get("lr"), "momentum": metadata.get("momentum"),
            "loss": metadata.get("loss"), "params": params, "momentum_buffer": momentum}


# ---------------------------------------------------------------------------------------------
# Command line.

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Tern's example trainer: deterministic SGD on synthetic data, marker-sealed checkpoints. "
                    "Flags override the environment (TRAINER_*, TERN_CHECKPOINT_DIR, TERN_RESUME_FROM).")
    parser.add_argument("--ckpt-dir", help="where step directories go (env TERN_CHECKPOINT_DIR)")
    parser.add_argument("--resume-from", help="a complete step directory to resume from; empty: start fresh (env TERN_RESUME_FROM)")
    parser.add_argument("--steps", type=int, help="train until this step (env TRAINER_STEPS, default 100)")
    parser.add_argument("--checkpoint-every", type=int, help="checkpoint every K steps (env TRAINER_CHECKPOINT_EVERY, default 10)")
    parser.add_argument("--seed", type=int, help="seed of the data, the teacher and the initial weights (env TRAINER_SEED, default 0)")
    parser.add_argument("--lr", type=float, help="learning rate (env TRAINER_LR, default 0.05)")
    parser.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    parser.add_argument("--features", type=int, help="input width (default 16)")
    parser.add_argument("--hidden", type=int, help="hidden width (default 32)")
    parser.add_argument("--batch-size", type=int, help="examples per step (default 16)")
    parser.add_argument("--model-mb", type=float, help="total MiB of the model-*.bin shards (env TRAINER_MODEL_MB, default 1)")
    parser.add_argument("--shards", type=int, help="number of model-*.bin shards (env TRAINER_SHARDS, default 4)")
    parser.add_argument("--frozen-base-mb", type=float, help="MiB of base-frozen.bin, the same bytes in every checkpoint (env TRAINER_FROZEN_BASE_MB, default 0: none)")
    parser.add_argument("--keep", type=int, help="delete complete step directories beyond the newest N (env TRAINER_KEEP, default 0: keep all)")
    parser.add_argument("--step-delay", type=float, help="sleep this many seconds after each step, to watch a run (env TRAINER_STEP_DELAY, default 0)")
    parser.add_argument("--log-every", type=int, help="print the loss every N steps (env TRAINER_LOG_EVERY, default 1)")
    parser.add_argument("--stop-after-step", type=int, metavar="S", help="write a checkpoint at step S and exit 0")
    parser.add_argument("--fail-at-step", type=int, metavar="S", help="exit with --exit-code right after step S, before its checkpoint")
    parser.add_argument("--fail-in-checkpoint", type=int, metavar="S", help="exit with --exit-code partway through writing the checkpoint at step S (no marker)")
    parser.add_argument("--exit-code", type=int, default=1, help="exit code of --fail-at-step / --fail-in-checkpoint (default 1; 75 is a retryable code in Tern's examples)")
    return parser.parse_args(argv)


def resolve(args: argparse.Namespace, name: str, kind, explicit: dict):
    """The flag, else the environment, else the default; records which were given."""
    value = getattr(args, name, None)
    if value is None and name in ENV and os.environ.get(ENV[name], "") != "":
        text = os.environ[ENV[name]]
        try:
            value = kind(text)
        except ValueError:
            raise Refusal("%s=%r is not a valid %s" % (ENV[name], text, kind.__name__))
    if value is not None:
        explicit[name] = value
        return value
    return DEFAULTS.get(name)


def build_config(args: argparse.Namespace) -> tuple[dict, dict]:
    explicit: dict = {}
    config = {
        "steps": resolve(args, "steps", int, explicit),
        "checkpoint_every": resolve(args, "checkpoint_every", int, explicit),
        "seed": resolve(args, "seed", int, explicit),
        "lr": resolve(args, "lr", float, explicit),
        "momentum": resolve(args, "momentum", float, explicit),
        "features": resolve(args, "features", int, explicit),
        "hidden": resolve(args, "hidden", int, explicit),
        "batch_size": resolve(args, "batch_size", int, explicit),
        "shards": resolve(args, "shards", int, explicit),
        "keep": resolve(args, "keep", int, explicit),
        "step_delay": resolve(args, "step_delay", float, explicit),
        "log_every": resolve(args, "log_every", int, explicit),
    }
    model_mb = resolve(args, "model_mb", float, explicit)
    frozen_mb = resolve(args, "frozen_base_mb", float, explicit)
    config["model_bytes"] = int(model_mb * MIB) // 4 * 4
    config["frozen_base_bytes"] = int(frozen_mb * MIB) // 4 * 4
    if "model_mb" in explicit:
        explicit["model_bytes"] = config["model_bytes"]
    if "frozen_base_mb" in explicit:
        explicit["frozen_base_bytes"] = config["frozen_base_bytes"]
    for name in ("steps", "checkpoint_every", "features", "hidden", "batch_size", "shards", "log_every"):
        if config[name] <= 0:
            raise Refusal("--%s must be positive (got %d)" % (name.replace("_", "-"), config[name]))
    if model_mb < 0 or frozen_mb < 0 or config["keep"] < 0 or config["step_delay"] < 0:
        raise Refusal("--model-mb, --frozen-base-mb, --keep and --step-delay cannot be negative")
    if config["seed"] < 0:
        raise Refusal("--seed cannot be negative")
    return config, explicit


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    pending = {"term": False, "usr1": False}

    def on_signal(number, _frame):
        pending["term" if number == signal.SIGTERM else "usr1"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)

    try:
        config, explicit = build_config(args)
        ckpt_dir = args.ckpt_dir if args.ckpt_dir is not None else os.environ.get("TERN_CHECKPOINT_DIR", "")
        if not ckpt_dir:
            raise Refusal("no checkpoint directory: pass --ckpt-dir or set TERN_CHECKPOINT_DIR")
        resume_from = args.resume_from if args.resume_from is not None else os.environ.get("TERN_RESUME_FROM", "")

        start_step, loss = 0, None
        if resume_from:
            state = load_checkpoint(resume_from)
            for key in MODEL_KEYS:
                if key in explicit and explicit[key] != state["config"][key]:
                    raise Refusal("%s in %s is %r but this run asks for %r: a resume must keep the checkpoint's %s"
                                  % (key, resume_from, state["config"][key], explicit[key], key))
                config[key] = state["config"][key]
            for key in ("lr", "momentum"):
                if key in explicit and explicit[key] != state[key]:
                    warn("%s changed from %r to %r on resume: the run is no longer identical to a straight one" % (key, state[key], explicit[key]))
                elif key not in explicit and isinstance(state[key], (int, float)):
                    config[key] = float(state[key])
            model = Model(config)
            params, momentum = state["params"], state["momentum_buffer"]
            start_step, loss = state["step"], state["loss"]
        else:
            model = Model(config)
            if config["model_bytes"] < 4 * model.size:
                config["model_bytes"] = 4 * model.size
            if config["shards"] > model.size:
                raise Refusal("--shards %d is more than the %d trainable parameters" % (config["shards"], model.size))
            params, momentum = model.initial()
    except Refusal as refusal:
        warn(str(refusal))
        return EXIT_USAGE

    Hooks.crash_in_checkpoint_step = args.fail_in_checkpoint
    Hooks.crash_exit_code = args.exit_code
    steps, every = config["steps"], config["checkpoint_every"]
    identity = " ".join("%s=%s" % (k, os.environ[k]) for k in ("TERN_JOB_ID", "TERN_ATTEMPT", "TERN_TARGET") if os.environ.get(k))
    log("train.py: %s at step %d of %d, seed %d, %d trainable parameters, %d model bytes in %d shards, %d frozen base bytes%s"
        % ("resuming from %s" % resume_from if resume_from else "starting fresh", start_step, steps, config["seed"],
           model.size, config["model_bytes"], config["shards"], config["frozen_base_bytes"], (" (" + identity + ")") if identity else ""))

    saved = {"step": None}

    def checkpoint(step: int, why: str) -> None:
        began = time.monotonic()
        directory = write_checkpoint(ckpt_dir, step, loss, params, momentum, model, config)
        saved["step"] = step
        log("checkpoint step %d -> %s (%s, %.2f s)" % (step, directory, why, time.monotonic() - began))
        prune(ckpt_dir, config["keep"])

    def handle_signals(step: int) -> int | None:
        if not (pending["term"] or pending["usr1"]):
            return None
        if saved["step"] != step and not is_complete(os.path.join(ckpt_dir, step_name(step))):
            checkpoint(step, "SIGTERM" if pending["term"] else "SIGUSR1")
        if pending["term"]:
            log("train.py: SIGTERM: checkpoint at step %d is written; exiting %d" % (step, EXIT_SIGTERM))
            return EXIT_SIGTERM
        pending["usr1"] = False
        return None

    step = start_step
    code = handle_signals(step)
    if code is not None:
        return code
    if step >= steps:
        log("train.py: already at step %d of %d; nothing to do" % (step, steps))
        return EXIT_OK
    while step < steps:
        step += 1
        params, momentum, loss = model.step(params, momentum, step, config["lr"], config["momentum"])
        if step % config["log_every"] == 0 or step == steps:
            log("step %d loss %.6f" % (step, loss))
        if args.fail_at_step == step:
            warn("simulated failure after step %d (exit %d)" % (step, args.exit_code))
            return args.exit_code
        if step % every == 0 or step == steps or step == args.stop_after_step:
            checkpoint(step, "every %d" % every if step % every == 0 else ("final" if step == steps else "--stop-after-step"))
        if step == args.stop_after_step:
            log("train.py: stopping after step %d (--stop-after-step)" % step)
            return EXIT_OK
        code = handle_signals(step)
        if code is not None:
            return code
        if config["step_delay"]:
            # In slices, so a signal is answered within 50 ms rather than after the whole delay.
            deadline = time.monotonic() + config["step_delay"]
            while not (pending["term"] or pending["usr1"]) and time.monotonic() < deadline:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            code = handle_signals(step)
            if code is not None:
                return code
    log("train.py: done at step %d, loss %.6f" % (step, loss))
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
