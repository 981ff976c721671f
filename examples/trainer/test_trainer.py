#!/usr/bin/env python3
"""Tests of the example trainer (standard library only): `python3 examples/trainer/test_trainer.py`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "train.py")
sys.path.insert(0, HERE)
import train  # noqa: E402

# A small run: 64 KiB of weights in 4 shards, 32 KiB frozen base, checkpoints every 5 steps.
SMALL = ["--model-mb", "0.0625", "--frozen-base-mb", "0.03125", "--checkpoint-every", "5"]


def environment(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TERN_", "TRAINER_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run(args: list[str], env: dict | None = None, expect: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, TRAIN] + args, env=environment(env), capture_output=True, text=True, timeout=120)
    if expect is not None and result.returncode != expect:
        raise AssertionError("train.py %s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), result.returncode, expect, result.stdout, result.stderr))
    return result


def files(directory: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as handle:
            out[name] = handle.read()
    return out


def loss_lines(output: str) -> dict[int, str]:
    return {int(line.split()[1]): line for line in output.splitlines() if line.startswith("step ")}


class TrainerTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="tern-trainer-test-")
        cls.straight = os.path.join(cls.root, "straight")
        cls.straight_run = run(["--ckpt-dir", cls.straight, "--steps", "20"] + SMALL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def scratch(self) -> str:
        return tempfile.mkdtemp(dir=self.root)

    def step_dir(self, ckpt: str, step: int) -> str:
        return os.path.join(ckpt, train.step_name(step))

    def assertSameCheckpoint(self, a: str, b: str):
        first, second = files(a), files(b)
        self.assertEqual(sorted(first), sorted(second))
        for name in first:
            self.assertEqual(first[name], second[name], "%s differs between %s and %s" % (name, a, b))

    # --- determinism -------------------------------------------------------------------------

    def test_resume_is_bit_identical_to_straight(self):
        ckpt = self.scratch()
        first = run(["--ckpt-dir", ckpt, "--steps", "20", "--stop-after-step", "7"] + SMALL)
        self.assertIn("stopping after step 7", first.stdout)
        self.assertEqual(sorted(os.listdir(ckpt)), ["step-00000005", "step-00000007"])
        second = run(["--ckpt-dir", ckpt, "--steps", "20", "--resume-from", self.step_dir(ckpt, 7)] + SMALL)
        self.assertIn("resuming from", second.stdout)
        straight = loss_lines(self.straight_run.stdout)
        resumed = loss_lines(second.stdout)
        self.assertEqual(sorted(resumed), list(range(8, 21)))
        for step, line in resumed.items():
            self.assertEqual(line, straight[step])
        # Weight shards, optimizer state, frozen base, metadata and marker: all the same bytes.
        for step in (10, 15, 20):
            self.assertSameCheckpoint(self.step_dir(self.straight, step), self.step_dir(ckpt, step))

    def test_environment_like_the_demo_job(self):
        ckpt = self.scratch()
        env = {"TERN_CHECKPOINT_DIR": ckpt, "TERN_RESUME_FROM": "", "TRAINER_STEPS": "12", "TRAINER_CHECKPOINT_EVERY": "4",
               "TRAINER_MODEL_MB": "0.0625", "TERN_JOB_ID": "job-1", "TERN_ATTEMPT": "1"}
        # The demo's command line on a first attempt: TERN_RESUME_FROM is empty, so --resume-from "" starts fresh.
        result = run(["--ckpt-dir", ckpt, "--resume-from", ""], env=env)
        self.assertIn("starting fresh", result.stdout)
        self.assertIn("TERN_JOB_ID=job-1", result.stdout)
        self.assertEqual(sorted(os.listdir(ckpt)), ["step-00000004", "step-00000008", "step-00000012"])
        # A later attempt, from the environment alone, resuming from a restored directory elsewhere.
        restored = os.path.join(self.scratch(), "restored-checkpoint")
        shutil.copytree(self.step_dir(ckpt, 4), restored)
        again = self.scratch()
        env.update({"TERN_CHECKPOINT_DIR": again, "TERN_RESUME_FROM": restored, "TRAINER_STEPS": "8", "TERN_ATTEMPT": "2"})
        result = run([], env=env)
        self.assertIn("resuming from %s at step 4" % restored, result.stdout)
        self.assertEqual(sorted(os.listdir(again)), ["step-00000008"])
        self.assertSameCheckpoint(self.step_dir(ckpt, 8), self.step_dir(again, 8))
        # Flags override the environment.
        flagged = self.scratch()
        run(["--ckpt-dir", flagged, "--resume-from", "", "--steps", "3", "--checkpoint-every", "2"], env=env)
        self.assertEqual(sorted(os.listdir(flagged)), ["step-00000002", "step-00000003"])

    # --- the marker ----------------------------------------------------------------------------

    def test_marker_is_the_newest_file_with_the_step(self):
        for step in (5, 10, 15, 20):
            directory = self.step_dir(self.straight, step)
            names = os.listdir(directory)
            self.assertNotIn("." + train.MARKER + ".tmp", names)
            marker = os.stat(os.path.join(directory, train.MARKER)).st_mtime_ns
            for name in names:
                self.assertLessEqual(os.stat(os.path.join(directory, name)).st_mtime_ns, marker, name)
            with open(os.path.join(directory, train.MARKER)) as handle:
                self.assertEqual(handle.read(), "step %d\n" % step)

    @unittest.skipUnless(os.path.isdir("/proc/self/fd"), "needs /proc to name fsync'd descriptors")
    def test_everything_is_fsynced_before_the_marker_and_the_marker_replaces_first(self):
        ckpt = self.scratch()
        config = {"seed": 0, "lr": 0.05, "momentum": 0.9, "features": 4, "hidden": 4, "batch_size": 2,
                  "model_bytes": 4096, "shards": 2, "frozen_base_bytes": 1024}
        model = train.Model(config)
        params, momentum = model.initial()
        events = []
        real_fsync, real_rename, real_unlink = os.fsync, os.rename, os.unlink

        def fsync(fd):
            events.append(("fsync", os.readlink("/proc/self/fd/%d" % fd)))
            return real_fsync(fd)

        def rename(source, target):
            events.append(("rename", source, target))
            return real_rename(source, target)

        def unlink(path, **kwargs):
            if not kwargs:  # shutil.rmtree's own unlinks (dir_fd=…) are not recorded
                events.append(("unlink", path))
            return real_unlink(path, **kwargs)

        with mock.patch.object(train.os, "fsync", fsync), mock.patch.object(train.os, "rename", rename), \
                mock.patch.object(train.os, "unlink", unlink):
            directory = os.path.realpath(train.write_checkpoint(ckpt, 3, 0.5, params, momentum, model, config))
            first_pass = list(events)
            events.clear()
            # Rewriting a complete directory (a resume from an older step): the marker goes first.
            train.write_checkpoint(ckpt, 3, 0.5, params, momentum, model, config)
            second_pass = list(events)
        self.assertEqual(second_pass[0], ("unlink", os.path.join(ckpt, "step-00000003", train.MARKER)))
        self.assertEqual(second_pass[1], ("fsync", directory))
        self.assertEqual(second_pass[2:], first_pass)

        marker = os.path.join(directory, train.MARKER)
        renames = [i for i, e in enumerate(first_pass) if e[0] == "rename"]
        self.assertEqual(len(renames), 1)
        at = renames[0]
        self.assertEqual(os.path.realpath(first_pass[at][2]), marker)
        before = {e[1] for e in first_pass[:at] if e[0] == "fsync"}
        data = set(os.listdir(directory)) - {train.MARKER}
        self.assertEqual(data, {"model-00001-of-00002.bin", "model-00002-of-00002.bin", "optimizer.bin",
                                "base-frozen.bin", "metadata.json"})
        for name in data:
            self.assertIn(os.path.join(directory, name), before, "%s is fsync'd before the marker" % name)
        self.assertIn(os.path.realpath(first_pass[at][1]), before, "the marker's temp file is fsync'd before its rename")
        # The directory is fsync'd after the metadata (so every entry is durable) and before the marker…
        metadata_sync = first_pass.index(("fsync", os.path.join(directory, "metadata.json")))
        self.assertIn(("fsync", directory), first_pass[metadata_sync:at])
        # …and again after it, then the parent.
        self.assertEqual(first_pass[at + 1:], [("fsync", directory), ("fsync", os.path.realpath(ckpt))])

    def test_a_crash_mid_checkpoint_leaves_no_marker_and_is_refused(self):
        ckpt = self.scratch()
        crash = run(["--ckpt-dir", ckpt, "--steps", "20", "--fail-in-checkpoint", "10", "--exit-code", "75"] + SMALL, expect=75)
        self.assertIn("simulated crash", crash.stderr)
        partial = self.step_dir(ckpt, 10)
        self.assertEqual(os.listdir(partial), ["model-00001-of-00004.bin"])
        refused = run(["--ckpt-dir", ckpt, "--steps", "20", "--resume-from", partial] + SMALL, expect=2)
        self.assertIn("no TERN_COMPLETE marker", refused.stderr)
        # Resuming from the last complete one rewrites step 10 whole, the same as a straight run.
        run(["--ckpt-dir", ckpt, "--steps", "20", "--resume-from", self.step_dir(ckpt, 5)] + SMALL)
        for step in (10, 20):
            self.assertSameCheckpoint(self.step_dir(self.straight, step), self.step_dir(ckpt, step))

    # --- checkpoint contents -------------------------------------------------------------------

    def test_frozen_base_is_identical_and_weights_change(self):
        checkpoints = [files(self.step_dir(self.straight, step)) for step in (5, 10, 15, 20)]
        for later in checkpoints[1:]:
            self.assertEqual(later["base-frozen.bin"], checkpoints[0]["base-frozen.bin"])
            self.assertNotEqual(later["optimizer.bin"], checkpoints[0]["optimizer.bin"])
            for shard in range(1, 5):
                name = "model-%05d-of-00004.bin" % shard
                self.assertNotEqual(later[name], checkpoints[0][name], "%s changes as training goes on" % name)
        self.assertEqual(len(checkpoints[0]["base-frozen.bin"]), 32768)
        self.assertEqual(sum(len(checkpoints[0]["model-%05d-of-00004.bin" % i]) for i in range(1, 5)), 65536)
        metadata = json.loads(checkpoints[-1]["metadata.json"])
        self.assertEqual((metadata["step"], metadata["format"], metadata["seed"]), (20, train.FORMAT, 0))
        self.assertEqual([t["shape"] for t in metadata["tensors"]], [[32, 16], [32], [32], [1]])

    def test_large_shards_are_written_in_chunks_and_verified_on_resume(self):
        ckpt = self.scratch()
        run(["--ckpt-dir", ckpt, "--steps", "2", "--checkpoint-every", "1", "--model-mb", "9", "--shards", "2",
             "--frozen-base-mb", "5"])
        sizes = {name: os.path.getsize(os.path.join(self.step_dir(ckpt, 2), name)) for name in os.listdir(self.step_dir(ckpt, 2))}
        self.assertEqual(sizes["model-00001-of-00002.bin"] + sizes["model-00002-of-00002.bin"], 9 << 20)
        self.assertEqual(sizes["base-frozen.bin"], 5 << 20)
        with open(os.path.join(self.step_dir(ckpt, 1), "base-frozen.bin"), "rb") as a, \
                open(os.path.join(self.step_dir(ckpt, 2), "base-frozen.bin"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        run(["--ckpt-dir", ckpt, "--steps", "3", "--resume-from", self.step_dir(ckpt, 2)])
        # A flipped byte deep in a shard (past the first chunk) is caught by the CRC check.
        shard = os.path.join(self.step_dir(ckpt, 3), "model-00002-of-00002.bin")
        with open(shard, "r+b") as handle:
            handle.seek(4500000)
            byte = handle.read(1)
            handle.seek(4500000)
            handle.write(bytes([byte[0] ^ 1]))
        refused = run(["--ckpt-dir", ckpt, "--steps", "4", "--resume-from", self.step_dir(ckpt, 3)], expect=2)
        self.assertIn("CRC-32", refused.stderr)

    # --- refusals and exit codes ---------------------------------------------------------------

    def test_refuses_missing_or_inconsistent_resume_directories(self):
        ckpt = self.scratch()
        missing = run(["--ckpt-dir", ckpt, "--resume-from", os.path.join(ckpt, "nope")], expect=2)
        self.assertIn("does not exist", missing.stderr)

        copy = os.path.join(self.scratch(), "step-00000010")
        shutil.copytree(self.step_dir(self.straight, 10), copy)
        os.unlink(os.path.join(copy, train.MARKER))
        self.assertIn("no TERN_COMPLETE marker", run(["--ckpt-dir", ckpt, "--resume-from", copy], expect=2).stderr)
        self.assertEqual(os.listdir(ckpt), [])

        shutil.rmtree(copy)
        shutil.copytree(self.step_dir(self.straight, 10), copy)
        with open(os.path.join(copy, "metadata.json")) as handle:
            metadata = json.load(handle)
        metadata["step"] = 11
        with open(os.path.join(copy, "metadata.json"), "w") as handle:
            json.dump(metadata, handle)
        self.assertIn("says step 11", run(["--ckpt-dir", ckpt, "--resume-from", copy], expect=2).stderr)

        # A flag that contradicts the checkpoint's shapes or seed.
        good = self.step_dir(self.straight, 10)
        self.assertIn("seed", run(["--ckpt-dir", ckpt, "--resume-from", good, "--seed", "3"], expect=2).stderr)
        self.assertIn("model_bytes", run(["--ckpt-dir", ckpt, "--resume-from", good, "--model-mb", "2"], expect=2).stderr)
        self.assertIn("TERN_CHECKPOINT_DIR", run(["--steps", "1"], expect=2).stderr)
        self.assertEqual(os.listdir(ckpt), [])

    def test_fail_at_step_exits_with_the_code_before_that_checkpoint(self):
        ckpt = self.scratch()
        result = run(["--ckpt-dir", ckpt, "--steps", "20", "--fail-at-step", "10", "--exit-code", "75"] + SMALL, expect=75)
        self.assertEqual(max(loss_lines(result.stdout)), 10)
        self.assertEqual(sorted(os.listdir(ckpt)), ["step-00000005"])
        self.assertEqual(run(["--ckpt-dir", ckpt, "--steps", "3", "--fail-at-step", "2"], expect=1).returncode, 1)

    def test_keep_deletes_older_complete_checkpoints(self):
        ckpt = self.scratch()
        os.makedirs(self.step_dir(ckpt, 1))  # an incomplete leftover is not ours to delete
        run(["--ckpt-dir", ckpt, "--steps", "20", "--keep", "2"] + SMALL)
        self.assertEqual(sorted(os.listdir(ckpt)), ["step-00000001", "step-00000015", "step-00000020"])

    def test_sigusr1_checkpoints_and_continues_sigterm_checkpoints_and_exits_143(self):
        ckpt = self.scratch()
        process = subprocess.Popen(
            [sys.executable, TRAIN, "--ckpt-dir", ckpt, "--steps", "100000", "--checkpoint-every", "100000",
             "--step-delay", "0.01", "--model-mb", "0.0625"],
            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(60, process.kill)
        watchdog.start()
        lines = []

        def read_until(predicate):
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if predicate(lines[-1]):
                    return lines[-1]
            raise AssertionError("train.py ended early:\n" + "\n".join(lines) + process.stderr.read())

        try:
            read_until(lambda line: line.startswith("step 3 "))
            process.send_signal(signal.SIGUSR1)
            usr1 = read_until(lambda line: line.startswith("checkpoint step"))
            self.assertIn("SIGUSR1", usr1)
            usr1_step = int(usr1.split()[2])
            read_until(lambda line: line.startswith("step %d " % (usr1_step + 2)))
            process.send_signal(signal.SIGTERM)
            rest, errors = process.communicate(timeout=30)
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        self.assertEqual(process.returncode, 143, errors)
        lines.extend(rest.splitlines())
        term = [line for line in lines if line.startswith("checkpoint step") and "SIGTERM" in line]
        self.assertEqual(len(term), 1, "\n".join(lines))
        term_step = int(term[0].split()[2])
        self.assertGreaterEqual(term_step, usr1_step + 2)
        self.assertEqual(max(loss_lines("\n".join(lines))), term_step)
        self.assertEqual(sorted(os.listdir(ckpt)), [train.step_name(usr1_step), train.step_name(term_step)])
        for step in (usr1_step, term_step):
            self.assertTrue(train.is_complete(self.step_dir(ckpt, step)))
        # Resuming from the SIGTERM checkpoint gives what a straight run gives.
        run(["--ckpt-dir", ckpt, "--steps", str(term_step + 2), "--model-mb", "0.0625", "--resume-from", self.step_dir(ckpt, term_step)])
        straight = self.scratch()
        run(["--ckpt-dir", straight, "--steps", str(term_step + 2), "--checkpoint-every", "1000", "--model-mb", "0.0625"])
        self.assertSameCheckpoint(self.step_dir(straight, term_step + 2), self.step_dir(ckpt, term_step + 2))

    def test_sigterm_right_after_start_writes_one_complete_checkpoint(self):
        ckpt = self.scratch()
        process = subprocess.Popen([sys.executable, TRAIN, "--ckpt-dir", ckpt, "--steps", "100000", "--step-delay", "0.05",
                                    "--model-mb", "0.0625"], env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = process.stdout.readline()
        self.assertIn("starting fresh", first)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        self.assertEqual(process.returncode, 143, err)
        steps = sorted(os.listdir(ckpt))
        self.assertEqual(len(steps), 1)
        self.assertTrue(train.is_complete(os.path.join(ckpt, steps[0])))


if __name__ == "__main__":
    unittest.main()
