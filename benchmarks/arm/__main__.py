"""python -m benchmarks.arm --ssh user@host --model M.tflite [--threads 1,2,4]

Copies runner.py and each model (with the model.json and records beside it) to
the device over scp, runs the runner there with ssh, fetches its JSON and
stores it in the ARM results directory that `python -m benchmarks.compare`
merges. The transport is a small object (run / put / get), so `--local` (a
rehearsal in a local folder) and `--emulate ROOT` (an aarch64 Debian root run
through qemu-user, made by benchmarks/arm/emulated.sh) replace ssh. Neither
gives device timings: their reports go to their own folders, never to the
"On ARM devices" table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks.arm import runner

RUNNER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")
_RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
ARM_RESULTS = os.path.join(_RESULTS, "arm")  # Real devices only: compare's ARM table.
REHEARSAL_RESULTS = os.path.join(_RESULTS, "arm_rehearsal")  # --local
EMULATED_RESULTS = os.path.join(_RESULTS, "arm_emulated")  # --emulate
EMULATED_PYTHON = "/opt/litert/bin/python"  # Where emulated.sh puts the venv.


class TransportError(RuntimeError):
    pass


def _check(cmd: Sequence[str], what: str, **kw) -> str:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if proc.returncode:
        raise TransportError(f"{what} failed (exit {proc.returncode}): "
                             f"{' '.join(map(shlex.quote, cmd))}\n{proc.stderr.strip()}")
    return proc.stdout


class SSHTransport:
    """Commands and copies on `user@host` (paths relative to the remote home)."""

    def __init__(self, target: str, port: int | None = None, identity: str | None = None,
                 ssh: str = "ssh", scp: str = "scp"):
        self.target = target
        options = ["-o", "BatchMode=yes"]
        if identity:
            options += ["-i", identity]
        self._ssh = [ssh, *options] + (["-p", str(port)] if port else [])
        self._scp = [scp, *options] + (["-P", str(port)] if port else [])

    def describe(self) -> str:
        return f"ssh {self.target}"

    def run(self, command: str) -> str:
        return _check([*self._ssh, self.target, command], f"ssh {self.target}")

    def put(self, local: str, remote: str) -> None:
        _check([*self._scp, local, f"{self.target}:{remote}"], "scp to device")

    def get(self, remote: str, local: str) -> None:
        _check([*self._scp, f"{self.target}:{remote}", local], "scp from device")


class LocalTransport:
    """The same operations in a local directory standing in for the remote home."""

    def __init__(self, root: str, shell: str = "bash"):
        self.root = os.path.abspath(root)
        self.shell = shell
        os.makedirs(self.root, exist_ok=True)

    def describe(self) -> str:
        return f"local {self.root}"

    def run(self, command: str) -> str:
        return _check([self.shell, "-c", command], "local shell", cwd=self.root)

    def put(self, local: str, remote: str) -> None:
        shutil.copyfile(local, os.path.join(self.root, remote))

    def get(self, remote: str, local: str) -> None:
        shutil.copyfile(os.path.join(self.root, remote), local)


class ChrootTransport(LocalTransport):
    """An emulated device: commands run in a foreign-architecture root (chroot +
    qemu-user via binfmt_misc), with a clean environment, in its /root."""

    def __init__(self, root: str, chroot: str = "chroot"):
        self.root_fs = os.path.abspath(root)
        if not os.path.isdir(os.path.join(self.root_fs, "root")):
            raise TransportError(f"{self.root_fs} is not a root made by "
                                 f"benchmarks/arm/emulated.sh (no root/ folder in it)")
        self.chroot = chroot
        super().__init__(os.path.join(self.root_fs, "root"))

    def describe(self) -> str:
        return f"emulated {self.root_fs}"

    def run(self, command: str) -> str:
        return _check([self.chroot, self.root_fs, "/usr/bin/env", "-i",
                       "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "/bin/sh", "-c",
                       f"cd /root && {command}"], f"chroot {self.root_fs}")


def run_on_device(transport, models: Sequence[str], threads: Sequence[int], *,
                  runs: int = runner.DEFAULT_RUNS, warmup: int = runner.DEFAULT_WARMUP,
                  python: str = "python3", remote_dir: str = "fer_arm",
                  faces: str | None = None) -> dict[str, Any]:
    """Ships runner + models, times them on the device, returns the latency report.

    With `faces` (a .npy of uint8 faces) each entry also gets `probs`: that
    model's probabilities on them as computed on the device (numpy array).
    """
    q = shlex.quote
    transport.run(f"mkdir -p {q(remote_dir)}")
    transport.put(RUNNER_PATH, f"{remote_dir}/runner.py")
    remote_models = []
    for i, model in enumerate(models):
        if not os.path.exists(model):
            raise FileNotFoundError(f"no model at {model}")
        folder = f"{remote_dir}/m{i}"  # One folder per model: each has its model.json.
        transport.run(f"rm -rf {q(folder)} && mkdir -p {q(folder)}")  # No stale records.
        transport.put(model, f"{folder}/{os.path.basename(model)}")
        for name in (runner.SPEC_FILENAME, *runner.RECORD_FILENAMES):
            beside = os.path.join(os.path.dirname(os.path.abspath(model)), name)
            if os.path.exists(beside):  # The variant is read from these records.
                transport.put(beside, f"{folder}/{name}")
        remote_models.append(f"m{i}/{os.path.basename(model)}")
    args = " ".join(f"--model {q(m)}" for m in remote_models)
    if faces:
        transport.put(faces, f"{remote_dir}/faces.npy")
        transport.run(f"rm -rf {q(remote_dir)}/probs")
        args += " --faces faces.npy --probs-dir probs"
    transport.run(f"cd {q(remote_dir)} && {python} runner.py {args} "
                  f"--threads {','.join(map(str, threads))} --runs {int(runs)} "
                  f"--warmup {int(warmup)} --json results.json")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "results.json")
        transport.get(f"{remote_dir}/results.json", local)
        with open(local) as f:
            report = json.load(f)
        probs = []
        for i in range(len(models) if faces else 0):
            transport.get(f"{remote_dir}/probs/{i}.npy", os.path.join(tmp, f"{i}.npy"))
            probs.append(np.load(os.path.join(tmp, f"{i}.npy")))
    if report.get("schema") != runner.SCHEMA:
        raise TransportError(f"the device wrote schema {report.get('schema')!r}, expected "
                             f"{runner.SCHEMA!r}: is its runner.py out of date?")
    for entry, model in zip(report["results"][::max(1, len(threads))], models):
        entry.setdefault("local_model_path", os.path.abspath(model))
    for i, entry in enumerate(report["results"]):
        entry["transport"] = transport.describe()
        if probs:
            entry["probs"] = probs[i // max(1, len(threads))]
    return report


def exported_models(export_dir: str) -> list[str]:
    """The files of the variants an export accepted, in its export.json's order."""
    path = os.path.join(export_dir, runner.RECORD_FILENAMES[1])
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {runner.RECORD_FILENAMES[1]} in {export_dir}: export "
                                "first (python -m fer.export --workdir RUN --variants ...)")
    with open(path) as f:
        record = json.load(f)
    return [os.path.join(export_dir, e["file"]) for e in record.get("variants", {}).values()]


def is_device_entry(entry: Mapping[str, Any]) -> bool:
    """A timing from a real ARM device: not a --local rehearsal, not emulated."""
    transport = str(entry.get("transport", ""))
    return (not transport.startswith(("local ", "emulated "))
            and str(entry.get("device", {}).get("machine", "")).startswith(("aarch64", "arm")))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "device"


def save_report(report: dict[str, Any], out_dir: str = ARM_RESULTS) -> str:
    """Stores a device's report as <device>-<time>.json where compare finds it."""
    os.makedirs(out_dir, exist_ok=True)
    device = report["results"][0]["device"]["name"] if report["results"] else "device"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = os.path.join(out_dir, f"{_slug(device)}-{stamp}.json")
    results = [{k: v for k, v in e.items() if k != "probs"} for e in report["results"]]
    with open(path, "w") as f:
        json.dump({**report, "results": results}, f, indent=2)
    return path


def load_reports(directory: str = ARM_RESULTS) -> list[dict[str, Any]]:
    """Every latency entry stored in an ARM results directory."""
    entries = []
    if not os.path.isdir(directory):
        return entries
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                report = json.load(f)
            if isinstance(report, dict) and report.get("schema") == runner.SCHEMA:
                entries.extend(report["results"])
    return entries


def main(argv=None) -> int:
    from benchmarks import latency

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--ssh", metavar="USER@HOST", help="the device (key-based ssh)")
    where.add_argument("--local", metavar="DIR",
                       help="run in a local directory instead (a dry run of the procedure)")
    where.add_argument("--emulate", metavar="ROOT",
                       help="run in the aarch64 root made by benchmarks/arm/emulated.sh "
                            "(qemu-user; outputs are aarch64's, timings are not a device's)")
    parser.add_argument("--port", type=int, help="ssh port (Termux's sshd: 8022)")
    parser.add_argument("--identity", help="ssh private key file")
    parser.add_argument("--ssh-command", default="ssh", help="ssh program")
    parser.add_argument("--scp-command", default="scp", help="scp program")
    parser.add_argument("--model", action="append", default=[], help=".tflite (repeatable)")
    parser.add_argument("--export", action="append", default=[], metavar="DIR",
                        help="an export directory: every variant its export.json accepted "
                             "(repeatable; a refused variant has no file and is skipped)")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--runs", type=int, default=runner.DEFAULT_RUNS)
    parser.add_argument("--warmup", type=int, default=runner.DEFAULT_WARMUP)
    parser.add_argument("--python", help="python on the device (default python3; "
                        f"with --local, this interpreter; with --emulate, {EMULATED_PYTHON})")
    parser.add_argument("--remote-dir", default="fer_arm",
                        help="working folder on the device (relative to its home)")
    parser.add_argument("--out", help=f"results directory (default: {ARM_RESULTS} for "
                        f"--ssh, {REHEARSAL_RESULTS} for --local, {EMULATED_RESULTS} for "
                        "--emulate)")
    args = parser.parse_args(argv)
    try:
        models = [*args.model, *(m for d in args.export for m in exported_models(d))]
        if not models:
            parser.error("name models with --model or --export")
        if args.ssh:
            transport = SSHTransport(args.ssh, args.port, args.identity, ssh=args.ssh_command,
                                     scp=args.scp_command)
            python, out = "python3", ARM_RESULTS
        elif args.emulate:
            transport = ChrootTransport(args.emulate)
            python, out = EMULATED_PYTHON, EMULATED_RESULTS
        else:
            transport = LocalTransport(args.local)
            python, out = shlex.quote(sys.executable), REHEARSAL_RESULTS
        report = run_on_device(transport, models, runner.parse_threads(args.threads),
                               runs=args.runs, warmup=args.warmup,
                               python=args.python or python, remote_dir=args.remote_dir)
    except (TransportError, FileNotFoundError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    path = save_report(report, args.out or out)
    if args.ssh:
        print(latency.markdown_table(report["results"]))
        print(f"\nSaved {path}; `python -m benchmarks.compare` merges it.")
    else:
        print(latency.markdown_table(report["results"], emulated=bool(args.emulate)))
        print(f"\nSaved {path}: {'an emulated run' if args.emulate else 'a rehearsal'}, "
              "not a device timing; `python -m benchmarks.compare` leaves it out.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
