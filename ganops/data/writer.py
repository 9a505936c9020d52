"""Writing the dataset artifact (DESIGN.md §3): a source's stream (``stream`` module) decoded a chunk at a time
into shards of ``data.shard_rows`` images with their manifest parts, resumable shard by shard, then
summary.json and grid.png. ``store`` reads what this writes; the stages downstream import only that."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core import artifacts as A
from ganops.core.artifacts import atomic_write_json
from ganops.core.locks import directory_lock, exclusive
from ganops.core.params import DataParams
from ganops.core.visual import save_grid
from ganops.data import shards
from ganops.data.raw import RawImages
from ganops.data.store import (
    GRID,
    SUMMARY,
    Dataset,
    _counts,
    _grid_picks,
    holdout_rows,
    load_holdout,
    load_images,
    too_small,
)
from ganops.data.stream import Stream, from_raw, tally

log = logging.getLogger(__name__)


CHUNK_BYTES = 32 << 20     # pixels decoded and written at a time (memory, whatever the dataset's size)


@dataclass
class _Part:
    stem: str                  # images | holdout_images
    manifest: str              # manifest | holdout_manifest
    rows: np.ndarray           # the stream's rows that go to this part, ascending


class _Shards:
    """One part's shards in ``scratch``: shard ``i`` holds the readable images of the part's rows
    ``[i·shard_rows, (i+1)·shard_rows)``, so each shard is decoded on its own (by any process, in any order).
    A shard counts once its images, its manifest part and its record (records/<stem>/) are written: a killed
    stage redoes only the shards without a record."""

    def __init__(self, scratch: Path, stream: Stream, part: _Part, rows_per_shard: int):
        self.scratch, self.stream, self.part, self.per = scratch, stream, part, rows_per_shard
        self.records_dir = scratch / "records" / part.stem
        self.count = shards.shard_count(len(part.rows), rows_per_shard)

    def _image_path(self, i: int) -> Path:
        return self.scratch / self.part.stem / shards.shard_name(i)

    def _manifest_path(self, i: int) -> Path:
        return self.scratch / self.part.manifest / shards.shard_name(i, ".parquet")

    def record(self, i: int) -> dict[str, Any] | None:
        path = self.records_dir / shards.shard_name(i, ".json")
        if not path.is_file():
            return None
        rec = json.loads(path.read_text())
        return rec if shards.is_complete(self._image_path(i), (rec["rows"], *self.stream.shape)) else None

    def records(self) -> list[dict[str, Any]]:
        return [r for r in map(self.record, range(self.count)) if r is not None]

    def write(self, i: int, chunk_rows: int, strict: bool) -> list[tuple[str, str]]:
        """Decode and commit shard ``i`` unless it is already; returns its unreadable files. ``strict`` (not
        data.skip_corrupt): a shard with an unreadable file is not committed (the stage then names them all and
        stops). One writer per shard: the processes that share the scratch (Dagster's partition runs, the
        stage) wait for each other's shard, then find its record."""
        self.records_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(self.records_dir / f".{shards.shard_name(i, '.lock')}", f"shard {i}", wait=True):
            done = self.record(i)
            if done is not None:
                return [tuple(b) for b in done["bad"]] if strict else []
            return self._write(i, chunk_rows, strict)

    def _write(self, i: int, chunk_rows: int, strict: bool) -> list[tuple[str, str]]:
        import pandas as pd

        st, rows = self.stream, self.part.rows[i * self.per:(i + 1) * self.per]
        out = shards.ShardFile(self._image_path(i), st.shape, len(rows))
        taken, sha1, bad = [], [], []
        modes: dict[str, dict[str, int]] = {}
        pixel_sum = 0
        try:
            for dec in st.read(rows, chunk_rows):
                bad += dec.bad
                if strict and bad:
                    continue          # read on, to name every unreadable file at once
                out.append(dec.images)
                taken.append(dec.rows[dec.ok])
                pixel_sum += int(dec.images.sum(dtype=np.int64))
                sha1 += [hashlib.sha1(img.tobytes()).hexdigest() for img in dec.images]
                for mode, kind in dec.modes:
                    tally(modes, mode, kind)
        except BaseException:
            out.abort()
            raise
        if strict and bad:
            out.abort()
            return bad
        source_rows = np.concatenate(taken) if taken else np.zeros(0, np.int64)
        frame_ = pd.DataFrame({"index": np.zeros(len(source_rows), np.int64),   # the part's row: set when moved
                               "label": st.labels[source_rows], "split": st.splits[source_rows].astype(str),
                               "sha1": sha1, "source": [st.sources[r] for r in source_rows.tolist()],
                               "original_index": source_rows.astype(np.int64)})
        A.atomic_write_bytes(self._manifest_path(i), frame_.to_parquet(index=False))
        out.commit()
        atomic_write_json(self.records_dir / shards.shard_name(i, ".json"),
                          {"shard": i, "rows": len(source_rows), "pixel_sum": pixel_sum, "modes": modes,
                           "bad": [list(b) for b in bad]})
        return bad

    def write_all(self, chunk_rows: int, strict: bool) -> list[tuple[str, str]]:
        """Every shard without a record; the unreadable files of those that could not be committed."""
        todo = [i for i in range(self.count) if self.record(i) is None]
        if 0 < len(todo) < self.count:
            log.info("dataset: resuming the %s at shard %d of %d (%d already written by a run that stopped or by "
                     "the dataset_shards partitions)", "training images" if self.part.stem == "images"
                     else "held-out images", todo[0], self.count, self.count - len(todo))
        failed = []
        for i in todo:
            bad = self.write(i, chunk_rows, strict)
            if strict:
                failed += bad
        return failed


def write_stream(out: Path, stream: Stream, p: DataParams, seed: int = 0, scratch: Path | None = None,
                 chunk_rows: int | None = None) -> dict[str, Any]:
    """The dataset artifact from ``stream``, decoded a chunk at a time into shards of ``data.shard_rows`` in
    ``scratch`` (resumed from there when a killed run left shards for the same stream), then moved into ``out``.
    Memory: a chunk of images and the rows' labels and names, whatever the dataset's size."""
    out = Path(out)
    own_scratch = scratch is None          # a caller without a scratch folder: one beside out, removed after
    scratch = Path(scratch) if scratch is not None else out.parent / f".{out.name}.shards-{os.getpid()}"
    parts = open_parts(scratch, stream, p, seed)
    chunk = chunk_rows or _chunk_rows(stream, p)
    failed = [b for w in parts for b in w.write_all(chunk, strict=not p.skip_corrupt)]
    records = [w.records() for w in parts]
    skipped = [tuple(b) for rs in records for r in rs for b in r["bad"]]
    modes: dict[str, dict[str, int]] = {}
    for rs in records:
        for r in rs:
            for mode, kinds in r["modes"].items():
                for kind, c in kinds.items():
                    tally(modes, mode, kind, c)
    report = stream.finish(modes, failed or skipped)     # raises on unreadable files without data.skip_corrupt
    for w in parts:
        _move(w, out)
    if own_scratch:
        A.remove_tree(scratch)
    return _summarise(out, p, sum(r["pixel_sum"] for r in records[0]), report, stream.class_names)


def open_parts(scratch: Path, stream: Stream, p: DataParams, seed: int = 0) -> list[_Shards]:
    """The training and held-out parts of ``stream`` as shards in ``scratch`` (kept from an earlier run of the
    same stream, shard size, holdout and seed; cleared otherwise)."""
    _begin(Path(scratch), stream.fingerprint + f"/{p.shard_rows}/{p.holdout}/{seed}")
    held = holdout_rows(stream.labels, p.holdout, seed)
    kept = np.setdiff1d(np.arange(len(stream)), held)
    return [_Shards(Path(scratch), stream, _Part(stem, manifest, rows), p.shard_rows)
            for stem, manifest, rows in (("images", "manifest", kept), ("holdout_images", "holdout_manifest", held))]


def _chunk_rows(stream: Stream, p: DataParams) -> int:
    return max(1, min(p.shard_rows, CHUNK_BYTES // max(1, int(np.prod(stream.shape)))))


def write_shards(scratch: Path, stream: Stream, p: DataParams, seed: int, indices: list[int],
                 chunk_rows: int | None = None) -> dict[str, Any]:
    """Shards ``indices`` of the training images and, where the held-out part has them, of the held-out
    images, into ``scratch`` (one Dagster partition, or a range of them): the dataset stage later moves them
    into the artifact instead of decoding them again. Unreadable files without data.skip_corrupt: the shard
    is not committed and the error names them (as the stage's would)."""
    parts = open_parts(scratch, stream, p, seed)
    count = parts[0].count
    wrong = [i for i in indices if not 0 <= i < count]
    if wrong:
        raise ValueError(f"shard {wrong[0]} is not one of {p.dataset}'s {count} shards (00000-"
                         f"{shards.shard_name(count - 1, '')}) at data.shard_rows={p.shard_rows}")
    chunk = chunk_rows or _chunk_rows(stream, p)
    bad: list[tuple[str, str]] = []
    for i in indices:
        for w in parts:
            if i < w.count:
                bad += w.write(i, chunk, strict=not p.skip_corrupt)
    if bad:
        stream.finish({}, bad)    # raises, naming every unreadable file, unless data.skip_corrupt
    recs = {w.part.stem: [w.record(i) for i in indices if i < w.count] for w in parts}
    return {"shards": len(indices), "of": count, "rows": sum(r["rows"] for r in recs["images"]),
            "holdout_rows": sum(r["rows"] for r in recs["holdout_images"]),
            "skipped": sum(len(r["bad"]) for rs in recs.values() for r in rs)}


def shard_total(labels: np.ndarray, p: DataParams, seed: int = 0) -> int:
    """How many shards the training images of a source with these row ``labels`` make (the held-out part has as
    many or fewer)."""
    held = holdout_rows(labels, p.holdout, seed)
    return shards.shard_count(len(labels) - len(held), p.shard_rows)


def _begin(scratch: Path, key: str) -> None:
    """Shards in ``scratch`` are kept only for the same stream, shard size, holdout and seed. Under a lock: the
    processes writing shards of one dataset at once agree on one scratch."""
    scratch.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(scratch.parent):
        stamp = scratch / "stream.txt"
        if scratch.is_dir() and (not stamp.is_file() or stamp.read_text() != key):
            A.remove_tree(scratch)
        scratch.mkdir(parents=True, exist_ok=True)
        if not stamp.is_file():
            A.atomic_write_bytes(stamp, key.encode())


def _move(w: _Shards, out: Path) -> None:
    """A part's shards from the scratch into the artifact, each manifest part given the part's row numbers: one
    shard as <stem>.npy and <manifest>.parquet, more as the folders (renames; the manifests rewritten)."""
    import pandas as pd

    start = 0
    for i in range(w.count):
        manifest = pd.read_parquet(w._manifest_path(i))
        manifest["index"] = np.arange(start, start + len(manifest), dtype=np.int64)
        start += len(manifest)
        manifest_to = shards.destination(out, w.part.manifest, i, w.count, ".parquet")
        manifest_to.parent.mkdir(parents=True, exist_ok=True)
        manifest.to_parquet(manifest_to, index=False)
    shards.place([w._image_path(i) for i in range(w.count)], out, w.part.stem)


def _summarise(out: Path, p: DataParams, pixel_sum: int, report: dict[str, Any],
               class_names: list[str] | None) -> dict[str, Any]:
    """summary.json and grid.png of the written artifact, read back a column at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # arrow columns, not pandas objects: a Python string per row would grow with N
    table = pa.concat_tables([pq.read_table(f, columns=["label", "split", "sha1"])
                              for f in shards.paths(out, "manifest", ".parquet")])
    held_labels = load_holdout(out)[1]
    images = load_images(out)
    labels = table["label"].to_numpy().astype(np.int64, copy=False)
    split = pc.dictionary_encode(table["split"]).combine_chunks()
    splits = np.array(split.dictionary.to_pylist(), dtype=str)[split.indices.to_numpy()]
    distinct_sha1 = pc.count_distinct(table["sha1"]).as_py()
    del table, split
    order = _grid_picks(labels, p.grid_size)
    save_grid(images[order], out / GRID, nrow=int(np.ceil(np.sqrt(len(order)))))
    labelled = labels >= 0
    n, n_held = len(labels), len(held_labels)
    metrics = {"n_images": n + n_held, "n_train": n, "n_shards": len(shards.paths(out, "images")),
               "n_holdout": n_held, "n_labelled": int(labelled.sum()),
               "n_classes": len(np.unique(labels[labelled])), "resolution": int(images.shape[-1]),
               "channels": int(images.shape[1]), "n_skipped": int(report.get("skipped", {}).get("count", 0)),
               "n_duplicates": int(n - distinct_sha1),
               **{f"n_{s}": c for s, c in _counts(splits).items()}}
    values = n * int(np.prod(images.shape[1:]))
    summary = {
        "metrics": metrics,
        "shape": list(images.shape),
        "class_names": class_names,
        "per_class": _counts(labels[labelled], class_names),
        "holdout_per_class": _counts(held_labels[held_labels >= 0], class_names),
        "per_split": _counts(splits),
        "per_split_class": {s: _counts(labels[(splits == s) & labelled], class_names)
                            for s in np.unique(splits).tolist()},
        "pixel_mean": float(pixel_sum / values / 255.0) if values else 0.0,
        "source_report": report,
    }
    warnings = too_small(metrics["n_images"], metrics["n_holdout"], p)
    if warnings:   # only then: a healthy dataset's summary keeps its bytes
        summary["warnings"] = warnings
    for warning in warnings:
        log.warning("%s", warning)
    atomic_write_json(out / SUMMARY, summary)
    return summary


def write_dataset(out: Path, ds: Dataset, p: DataParams, seed: int = 0) -> dict[str, Any]:
    """The artifact of a dataset already in memory (framed by ``prepare``)."""
    raw = RawImages(ds.images, ds.labels, ds.splits, ds.sources, ds.class_names, ds.report)
    return write_stream(out, from_raw(raw, p), p, seed)


