"""python -m benchmarks.arm --ssh user@host --model M.tflite [--threads 1,2,4]

Copies runner.py and each model (with the model.json beside it) to the device
over scp, runs the runner there with ssh, fetches its JSON and stores it in the
ARM results directory that `python -m benchmarks.compare` merges. The
transport is a small object (run / put / get), so tests and `--local` replace
ssh with a local shell.
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
from typing import Any, Sequence

from benchmarks.arm import runner

RUNNER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")
ARM_RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "results", "arm")


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


def run_on_device(transport, models: Sequence[str], threads: Sequence[int], *,
                  runs: int = runner.DEFAULT_RUNS, warmup: int = runner.DEFAULT_WARMUP,
                  python: str = "python3", remote_dir: str = "fer_arm") -> dict[str, Any]:
    """Ships runner + models, times them on the device, returns the latency report."""
    q = shlex.quote
    transport.run(f"mkdir -p {q(remote_dir)}")
    transport.put(RUNNER_PATH, f"{remote_dir}/runner.py")
    remote_models = []
    for i, model in enumerate(models):
        if not os.path.exists(model):
            raise FileNotFoundError(f"no model at {model}")
        folder = f"{remote_dir}/m{i}"  # One folder per model: each has its model.json.
        transport.run(f"mkdir -p {q(folder)}")
        transport.put(model, f"{folder}/{os.path.basename(model)}")
        spec = os.path.join(os.path.dirname(os.path.abspath(model)), runner.SPEC_FILENAME)
        if os.path.exists(spec):
            transport.put(spec, f"{folder}/{runner.SPEC_FILENAME}")
        remote_models.append(f"m{i}/{os.path.basename(model)}")
    args = " ".join(f"--model {q(m)}" for m in remote_models)
    transport.run(f"cd {q(remote_dir)} && {python} runner.py {args} "
                  f"--threads {','.join(map(str, threads))} --runs {int(runs)} "
                  f"--warmup {int(warmup)} --json results.json")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "results.json")
        transport.get(f"{remote_dir}/results.json", local)
        with open(local) as f:
            report = json.load(f)
    if report.get("schema") != runner.SCHEMA:
        raise TransportError(f"the device wrote schema {report.get('schema')!r}, expected "
                             f"{runner.SCHEMA!r}: is its runner.py out of date?")
    for entry, model in zip(report["results"][::max(1, len(threads))], models):
        entry.setdefault("local_model_path", os.path.abspath(model))
    for entry in report["results"]:
        entry["transport"] = transport.describe()
    return report


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "device"


def save_report(report: dict[str, Any], out_dir: str = ARM_RESULTS) -> str:
    """Stores a device's report as <device>-<time>.json where compare finds it."""
    os.makedirs(out_dir, exist_ok=True)
    device = report["results"][0]["device"]["name"] if report["results"] else "device"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = os.path.join(out_dir, f"{_slug(device)}-{stamp}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
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
    parser.add_argument("--port", type=int, help="ssh port (Termux's sshd: 8022)")
    parser.add_argument("--identity", help="ssh private key file")
    parser.add_argument("--ssh-command", default="ssh", help="ssh program")
    parser.add_argument("--scp-command", default="scp", help="scp program")
    parser.add_argument("--model", required=True, action="append", help=".tflite (repeatable)")
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--runs", type=int, default=runner.DEFAULT_RUNS)
    parser.add_argument("--warmup", type=int, default=runner.DEFAULT_WARMUP)
    parser.add_argument("--python", help="python on the device (default python3; "
                        "with --local, this interpreter)")
    parser.add_argument("--remote-dir", default="fer_arm",
                        help="working folder on the device (relative to its home)")
    parser.add_argument("--out", default=ARM_RESULTS, help="ARM results directory")
    args = parser.parse_args(argv)
    transport = (SSHTransport(args.ssh, args.port, args.identity, ssh=args.ssh_command,
                              scp=args.scp_command) if args.ssh
                 else LocalTransport(args.local))
    try:
        report = run_on_device(transport, args.model, runner.parse_threads(args.threads),
                               runs=args.runs, warmup=args.warmup,
                               python=args.python or (
                                   "python3" if args.ssh else shlex.quote(sys.executable)),
                               remote_dir=args.remote_dir)
    except (TransportError, FileNotFoundError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    path = save_report(report, args.out)
    print(latency.markdown_table(report["results"]))
    print(f"\nSaved {path}; `python -m benchmarks.compare` merges it.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
