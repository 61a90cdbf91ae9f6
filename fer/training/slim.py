"""A finished run without its optimizer state: for inference, export and transfer.

    python -m fer.training.slim runs/ferplus/resnet_fer_tiny /tmp/resnet_fer_tiny_slim

Adam keeps two moments per parameter, so a checkpoint is three times the model. A
slim copy keeps every file of the run and each checkpoint (same epochs, same
metadata) with the optimizer state zeroed: everything that reads a model
(`fer.loading.load_model`, evaluation, export, ensembles) reads it unchanged, and it
compresses to about the size of the weights. Training refuses to resume one: with
its moments zeroed, Adam's first steps would be wild.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import jax
import jax.numpy as jnp

from fer import spec as spec_lib
from fer.training import checkpoint as checkpoint_lib

def slim_copy(workdir: str, out: str) -> list[tuple[str, int]]:
    """Copies `workdir` to `out` (a new folder) with its best and newest checkpoints.

    Returns the (which, epoch) pairs written.
    """
    if os.path.exists(out):
        raise FileExistsError(f"{out} exists; slim_copy writes a new folder")
    _, target = checkpoint_lib.restore_target(checkpoint_lib.load_config(workdir),
                                              spec_lib.ModelSpec.load(workdir))
    source = checkpoint_lib.Checkpoints(workdir, read_only=True)
    try:
        # The best and the newest latest (what readers load), best first: the order a
        # training run saves them in.
        newest = {which: max(source.epochs(which), default=None)
                  for which in ("best", "latest")}
        if all(epoch is None for epoch in newest.values()):
            raise FileNotFoundError(f"no checkpoint in {source.directory}: nothing to copy")
        shutil.copytree(workdir, out,
                        ignore=shutil.ignore_patterns(checkpoint_lib.CHECKPOINT_DIR))
        dest = checkpoint_lib.Checkpoints(out, keep=1)
        written = []
        try:
            for which, epoch in newest.items():
                if epoch is None:
                    continue
                state, meta = source.restore(which, target, epoch=epoch)
                state = state.replace(opt_state=jax.tree.map(jnp.zeros_like, state.opt_state))
                manager = dest.best if which == "best" else dest.latest
                manager.save(epoch, args=checkpoint_lib.save_args(
                    state, {**meta, checkpoint_lib.SLIM_KEY: True}))
                written.append((which, epoch))
            dest.wait()
        finally:
            dest.close()
    finally:
        source.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", help="a finished training run")
    parser.add_argument("out", help="the slim copy to write (a new folder)")
    args = parser.parse_args(argv)
    written = slim_copy(args.workdir, args.out)
    print(f"{args.out}: " + ", ".join(f"{which} {epoch}" for which, epoch in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
