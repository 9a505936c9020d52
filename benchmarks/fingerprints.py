"""What a refactor must keep: the SHA-256 of every artifact file of a short run of every stage and family.

Runs the whole chain through the library's stage entry points (what every front door calls) in a fresh
project folder, on the bundled digits for the generators (dcgan, cgan, icgan, class-conditional icgan)
and digits → the MNIST test split for the translators (dtn, cyclegan), each stage at a small budget, then
hashes every file of every artifact. meta.json is hashed without ``code_version`` and ``versions`` (the
source's hash and the libraries': they change with any edit, not with behaviour).

Run it before and after a change that should not change behaviour; the two JSON last lines must have the
same ``digest``. ``--out`` keeps the per-file table for a diff.

    python benchmarks/fingerprints.py --mnist ../shared/data/mnist --out /tmp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganops.core.identity import split_name, transfer_chain
from ganops.core.params import load
from ganops.stages import run_stage

SMALL = ["tracking.enabled=false", "device=cpu", "embed.epochs=2", "evaluator.epochs=2", "train.steps=30",
         "train.log_every=10", "train.checkpoint_every=20", "train.sample_every=15", "evaluate.n_samples=300",
         "evaluate.per_label=20", "evaluate.instances=8", "evaluate.per_instance=4", "evaluate.ppl_pairs=50",
         "evaluate.kid_subsets=10", "evaluate.kid_subset_size=100", "evaluate.inception=off"]
GENERATORS = {"dcgan": ["train.family=dcgan"], "cgan": ["train.family=cgan"], "icgan": ["train.family=icgan"],
              "icgan_cc": ["train.family=icgan", "train.class_conditional=true"]}
TRANSFER = ["transfer.steps=20", "transfer.log_every=10", "transfer.checkpoint_every=10", "transfer.sample_every=10",
            "transfer.source_evaluator.epochs=2", "transfer.target_evaluator.epochs=2", "transfer.g_filters=16",
            "transfer.source_classifier.epochs=2",
            "transfer.d_filters=16", "transfer.n_blocks=2", "transfer.batch_size=16",
            "transfer.target.dataset=mnist", "transfer.target.download=false", "transfer.target.limit=600"]


def file_digest(path: Path) -> str:
    if path.name == "meta.json":
        meta = json.loads(path.read_text())
        meta.pop("code_version", None)
        meta.pop("versions", None)
        return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifacts(root: Path, prefix: str) -> dict[str, str]:
    return {prefix + str(f.relative_to(root)): file_digest(f) for f in sorted((root / "data").rglob("*"))
            if f.is_file() and ".checkpoints" not in f.parts and ".locks" not in f.parts}


def samples(root: Path, name: str, p) -> dict[str, str]:
    """What `ganops sample` draws from the trained generator, hashed."""
    import numpy as np
    from PIL import Image

    from ganops.commands.sample import sample

    digit = root / "digit.png"
    Image.fromarray(np.load(root / "data/dataset/digits/images.npy")[5, 0]).save(digit)
    asks = {} if name == "cgan" else {"data": {}}      # a cGAN is asked for a label
    if name in ("cgan", "icgan_cc"):
        asks["label3"] = {"label": 3}
    if name.startswith("icgan"):
        asks["instance"] = {"instance": digit, **({"label": 1} if name == "icgan_cc" else {})}
    return {f"sample/{name}/{ask}": hashlib.sha256(sample(p, root, 16, 1, **kw).tobytes()).hexdigest()
            for ask, kw in asks.items()}


def translations(root: Path) -> dict[str, str]:
    """What `ganops translate` makes of source images, hashed."""
    import numpy as np

    from ganops.models import load_model

    out = {}
    for family in ("dtn", "cyclegan"):
        w = root / f"data/transfer/digits-to-mnist/{family}/model.pt"
        src = np.load(root / "data/domains/source/dataset/digits/images.npy")[:8]
        out[f"translate/{family}"] = hashlib.sha256(load_model(w).translate(src).tobytes()).hexdigest()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", default="../shared/data/mnist", help="folder holding MNIST/raw (the target domain)")
    ap.add_argument("--root", default=None, help="project folder to build in (default: a temporary one)")
    ap.add_argument("--out", default=None, help="write {file: sha256} here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    root = Path(args.root or tempfile.mkdtemp(prefix="ganops-fp-"))
    t0 = time.perf_counter()
    table: dict[str, str] = {}
    for name, extra in GENERATORS.items():
        p = load(None, [*SMALL, *extra])
        stages = ["dataset", "evaluator", "train", "evaluate"]
        if "train.family=icgan" in extra:
            stages = ["dataset", "embeddings", "neighbors", *stages[1:]]
        for stage in stages:
            print(f"[{time.perf_counter() - t0:6.0f}s] {name}: {stage}", file=sys.stderr)
            run_stage(stage, p, root)
        # icgan and its class-conditional variant share a directory: hash each before the next replaces it
        table.update(artifacts(root, f"{name}:"))
        table.update(samples(root, name, p))
    mnist = str(Path(args.mnist).resolve())
    for family in ("dtn", "cyclegan"):
        p = load(None, [*SMALL, *TRANSFER, f"transfer.target.root={mnist}", f"transfer.family={family}"])
        for stage, role in map(split_name, transfer_chain(family)):
            print(f"[{time.perf_counter() - t0:6.0f}s] {family}: {stage} {role or ''}", file=sys.stderr)
            run_stage(stage, p, root, domain=role)
    table.update(artifacts(root, "transfer:"))
    table.update(translations(root))
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1, sort_keys=True))
    digest = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()
    print(json.dumps({"benchmark": "fingerprints", "files": len(table), "digest": digest,
                      "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
