"""The pictures the evaluation stage writes for a trained generator.

Every function takes numpy inputs (and a trained ``GeneratorModel``, on any device), writes one PNG and
returns its path. Randomness comes only from the ``seed`` argument (a ``torch.Generator`` for z,
``numpy.random.default_rng`` for choices) and the images are drawn by ``ganops.core.visual``, so the same
inputs give the same bytes: artifacts are content-hashed.

Conditions (``labels`` / ``features``): a class-conditional G given no labels gets class r mod n_classes
for row r (``GeneratorModel.conditions_for``); an instance-conditional G (IC-GAN) needs ``features``.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganops.core.artifacts import atomic_write_bytes
from ganops.core.visual import _font, _text, annotated_grid, save_grid, save_image
from ganops.models.gan_model import PER_ROW

NOISE = 0.25                # perturbation scale around the arithmetic's result (Radford et al. 2015, fig. 7)
N_PERTURBED = 8             # perturbed results per arithmetic row, after the unperturbed one
MAX_TRIPLES = 4             # arithmetic rows
MAX_CLASSES_SHOWN = 12      # cells of the arithmetic's fallback row
PANEL_COLS = 8              # neighbors (and samples) shown per instance, at most
PANEL_ROWS = 16             # instances shown, at most (the first ones)
NEAREST_PAIRS = 32          # (sample, nearest) pairs shown, at most (the closest ones)
INSTANCE_FRAME = (31, 119, 180)     # blue: the real instance a row is conditioned on
GENERATED_FRAME = (255, 127, 14)    # orange: a generated image
SUSPECT_FRAME = (214, 39, 40)       # red: a training image closer to its sample than the held-out reference
TEXT = (40, 40, 40)



def sample_grid(model, path: Path, n: int = 64, seed: int = 0, labels=None, features=None) -> Path:
    """``n`` samples, PER_ROW a row, upscaled (save_grid) so 32-px digits are readable. ``labels`` /
    ``features``: one condition for all or one per sample; the samples are ``model.generate(n, seed=seed)``'s."""
    if model.conditions.label and labels is None:
        labels = np.arange(n) // PER_ROW % model.conditions.n_classes
    return save_grid(model.generate(n, seed=seed, labels=labels, features=features), Path(path), nrow=PER_ROW)


def slerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation (…, d), (…, d) → (…, steps, d), both endpoints exact. Unlike a straight
    line it keeps equal-norm endpoints' norm, so frames stay where the Gaussian prior puts its mass."""
    if steps < 2:
        raise ValueError(f"a walk needs at least 2 steps, got {steps}")
    a, b = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]           # linspace ends on exactly 1.0
    cos = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))[..., None, None]
    so = np.sin(omega)
    flat = so < 1e-6                                     # (anti)parallel endpoints: fall back to a line
    safe = np.where(flat, 1.0, so)
    w0 = np.where(flat, 1.0 - t, np.sin((1.0 - t) * omega) / safe)   # sin(ω)/sin(ω) == 1.0 exactly
    w1 = np.where(flat, t, np.sin(t * omega) / safe)
    return w0 * a[..., None, :] + w1 * b[..., None, :]


def latent_walk(model, path: Path, rows: int = 8, steps: int = 10, seed: int = 0, labels=None, features=None) -> Path:
    """DCGAN's latent walk: per row two random z and ``steps`` slerp frames between them, the condition
    fixed per row (``labels`` / ``features``: one for all rows or one per row). Row r walks from sample
    2r to sample 2r+1 of ``model.generate(2 * rows, seed=seed)`` (same z stream)."""
    y, h = model.conditions_for(rows, labels, features, rows=True)
    ends = model.noise(2 * rows, seed).reshape(rows, 2, -1)
    z = torch.as_tensor(slerp(ends[:, 0].double().numpy(), ends[:, 1].double().numpy(), steps), dtype=torch.float32)
    images = model.render(z.reshape(rows * steps, -1), _repeat(y, rows * steps), _repeat(h, rows * steps))
    return save_grid(images, Path(path), nrow=steps)


def pick_triples(classes, seed: int = 0, limit: int = MAX_TRIPLES, min_members: int = 3) -> list[tuple[int, int, int]]:
    """Up to ``limit`` class triples (a, b, c) for z̄_a − z̄_b + z̄_c: three distinct classes, each with at
    least ``min_members`` members in ``classes``; a < c since a − b + c == c − b + a. Seeded, sorted."""
    values, counts = np.unique(np.asarray(classes).reshape(-1), return_counts=True)
    ok = [int(v) for v in values[counts >= min_members]]
    every = [(a, b, c) for b in ok for a in ok for c in ok if a < c and b not in (a, c)]
    if not every:
        return []
    picks = np.random.default_rng(seed).choice(len(every), min(limit, len(every)), replace=False)
    return sorted(every[i] for i in picks)


def latent_arithmetic(model, path: Path, classify: Callable[[np.ndarray], np.ndarray], seed: int = 0,
                      n_pool: int = 512, labels=None, features=None) -> Path:
    """DCGAN's vector arithmetic with classes: a pool of ``n_pool`` samples is labelled by ``classify``
    (uint8 N×C×H×W → N ints); per triple (pick_triples) the z of 3 random samples of each class are
    averaged (the paper's 3 exemplars) and v = z̄_a − z̄_b + z̄_c. A row shows G(z̄_a), G(z̄_b), G(z̄_c)
    captioned "a", "-b", "+c", then G(v) and G(v + 0.25·ε) for 8 ε, captioned "=" and their class.
    One condition (``labels`` / ``features``, class 0 if a class-conditional G gets none) for every image:
    the arithmetic is in z.

    Fallback, when no triple exists (the classifier found fewer than 3 classes with 3 samples): a single
    row with one sample per class found, captioned "class: count", under a title saying why."""
    y, h = model.conditions_for(1, labels, features, rows=True)
    z_rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n_pool, model.cfg.z_dim, generator=z_rng)
    pool = model.render(z, _repeat(y, n_pool), _repeat(h, n_pool))
    classes = _classes(classify, pool)
    triples = pick_triples(classes, seed)
    if not triples:
        values, first, counts = np.unique(classes, return_index=True, return_counts=True)
        keep = slice(0, MAX_CLASSES_SHOWN)
        img = annotated_grid(pool[first[keep]], len(values[keep]),
                             [f"{v}: n={c}" for v, c in zip(values[keep], counts[keep])])
        why = (f"no z arithmetic: it needs 3 classes with >= 3 samples each; "
               f"the classifier's classes among {n_pool} samples:")
        return save_image(_titled(img, why), path)

    rng = np.random.default_rng([seed, 1])       # a stream apart from pick_triples'
    rows = []
    for a, b, c in triples:
        means = [z[np.sort(rng.choice(np.flatnonzero(classes == k), 3, replace=False))].mean(0) for k in (a, b, c)]
        v = means[0] - means[1] + means[2]
        rows += [*means, v, *(v + NOISE * torch.randn(N_PERTURBED, model.cfg.z_dim, generator=z_rng))]
    ncol = 4 + N_PERTURBED
    images = model.render(torch.stack(rows), _repeat(y, len(rows)), _repeat(h, len(rows)))
    shape = images.shape[1:]
    results = _classes(classify, images.reshape(-1, ncol, *shape)[:, 3:].reshape(-1, *shape)).reshape(len(triples), -1)
    captions = []
    for (a, b, c), found in zip(triples, results):
        captions += [f"{a}", f"-{b}", f"+{c}", *(f"={k}" for k in found)]
    frames = [None, None, None, *[GENERATED_FRAME] * (ncol - 3)] * len(triples)
    title = (f"z arithmetic: mean z of 3 samples of classes a, b, c; a - b + c, then {N_PERTURBED} results "
             f"with noise {NOISE}; captions: the classifier's class")
    return save_image(_titled(annotated_grid(images, ncol, captions, frames, split=3), title), path)


def instance_panel(path: Path, instances: np.ndarray, neighbors: np.ndarray, fakes: np.ndarray,
                   captions: Sequence[str] | None = None) -> Path:
    """IC-GAN: per instance a row: the real conditioning image (blue frame, set apart), its real
    neighbors, then samples generated from it (orange frames). Arrays M×C×H×W, M×k×C×H×W, M×s×C×H×W;
    ``captions``: one per row for the instance (e.g. "held-out"), else "instance". At most PANEL_ROWS
    rows and PANEL_COLS neighbors and samples each, so the cells stay readable within MAX_SIDE."""
    instances, neighbors, fakes = (np.asarray(a) for a in (instances, neighbors, fakes))
    m = len(instances)
    if neighbors.ndim != 5 or fakes.ndim != 5 or len(neighbors) != m or len(fakes) != m:
        raise ValueError(f"want M×k×C×H×W neighbors and M×s×C×H×W fakes for {m} instances, got "
                         f"{neighbors.shape} and {fakes.shape}")
    if neighbors.shape[2:] != instances.shape[1:] or fakes.shape[2:] != instances.shape[1:]:
        raise ValueError(f"image shapes differ: {instances.shape[1:]}, {neighbors.shape[2:]}, {fakes.shape[2:]}")
    if captions is not None and len(captions) != m:
        raise ValueError(f"{len(captions)} captions for {m} instances")
    m = min(m, PANEL_ROWS)
    nbs, fks = neighbors[:m, :PANEL_COLS], fakes[:m, :PANEL_COLS]
    k, s = nbs.shape[1], fks.shape[1]
    cells, caps, frames = [], [], []
    for i in range(m):
        cells += [instances[i], *nbs[i], *fks[i]]
        caps += [captions[i] if captions is not None else "instance", *["neighbor"] * k, *["sample"] * s]
        frames += [INSTANCE_FRAME, *[None] * k, *[GENERATED_FRAME] * s]
    return save_image(annotated_grid(np.stack(cells), 1 + k + s, caps, frames, split=1), path)


def instances_grid(path: Path, instances: np.ndarray, samples: np.ndarray, per_instance: int) -> tuple[Path, int]:
    """IC-GAN on a dataset's instances: each instance (blue frame) followed by its ``per_instance`` samples
    (orange frames), as many instance groups a row as fit 8 cells (one group when they do not), at most
    PANEL_ROWS rows. Returns the path and how many instances the picture shows (the first ones)."""
    instances, samples = np.asarray(instances), np.asarray(samples)
    if len(samples) != len(instances) * per_instance or samples.shape[1:] != instances.shape[1:]:
        raise ValueError(f"want {per_instance} samples of shape {instances.shape[1:]} for each of {len(instances)} "
                         f"instances, got {samples.shape}")
    group = 1 + per_instance
    per_row = max(1, PANEL_COLS // group)
    shown = min(len(instances), per_row * PANEL_ROWS)
    cells = np.concatenate([instances[:shown, None],
                            samples[:shown * per_instance].reshape(shown, per_instance, *samples.shape[1:])], axis=1)
    frames = [INSTANCE_FRAME, *[GENERATED_FRAME] * per_instance] * shown
    img = annotated_grid(cells.reshape(-1, *instances.shape[1:]), group * per_row, None, frames)
    return save_image(img, path), shown


def nearest_panel(path: Path, fakes: np.ndarray, nearest: np.ndarray, distances,
                  holdout_reference: float | None = None) -> Path:
    """Memorisation: (generated sample, its nearest training image) pairs, closest first (the NEAREST_PAIRS
    closest), 4 pairs a row, the distance beneath each training image. ``holdout_reference`` (e.g. the
    median nearest-train distance of held-out real images) goes in the title, and a training image
    closer than it gets a red frame: a sample nearer to training data than real unseen images are."""
    fakes, nearest = np.asarray(fakes), np.asarray(nearest)
    d = np.asarray(distances, np.float64).reshape(-1)
    if not len(fakes) == len(nearest) == len(d) or fakes.shape[1:] != nearest.shape[1:]:
        raise ValueError(f"want as many samples, nearest images and distances: {fakes.shape}, {nearest.shape}, "
                         f"{d.shape}")
    order = np.argsort(d, kind="stable")[:NEAREST_PAIRS]
    cells, caps, frames = [], [], []
    for i in order:
        near = holdout_reference is not None and d[i] < holdout_reference
        cells += [fakes[i], nearest[i]]
        caps += ["sample", f"d={d[i]:.3g}"]
        frames += [GENERATED_FRAME, SUSPECT_FRAME if near else None]
    title = "generated sample | nearest training image (distance), closest first"
    if holdout_reference is not None:
        title += f"; held-out reference {holdout_reference:.3g} (red: closer than it)"
    return save_image(_titled(annotated_grid(np.stack(cells), 8, caps, frames), title), path)


def loss_plot(history: Sequence[dict], path: Path) -> Path:
    """The losses of a history.json (the trainer's means over each log window): D's and G's totals, and
    beside them D's mean logits on real and fake images (the generators) or the terms G's total is made
    of (a translator's adversarial, cycle, identity, const, … losses)."""
    if not history:
        raise ValueError("the history is empty: no losses to plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # An Agg canvas of its own rather than pyplot + matplotlib.use("Agg"): same pixels headless or not,
    # and a caller's pyplot backend and open figures are left alone (switching backends closes them).
    step = [e["step"] for e in history]
    logits = [k for k in ("d_real", "d_fake") if all(k in e for e in history)]
    second = (logits, "mean logit", "D on real and fake") if logits else (
        [k for k in history[0] if k not in ("step", "d_loss", "g_loss") and all(k in e for e in history)],
        "loss", "the terms of the losses")
    fig = Figure(figsize=(10 if second[0] else 6, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if second[0] else 1, squeeze=False)[0]
    for ax, (keys, ylabel, title) in zip(axes, ((("d_loss", "g_loss"), "loss", "losses"), second)):
        for k in keys:
            ax.plot(step, [e[k] for e in history], label=k, marker="." if len(step) < 50 else None)
        ax.set(xlabel="step (G updates)", ylabel=ylabel, title=title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("training history")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return atomic_write_bytes(Path(path), buf.getvalue())


def _repeat(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Each row's condition for its ``n // len(t)`` consecutive images."""
    return None if t is None else t.repeat_interleave(n // len(t), dim=0)


def _classes(classify: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    out = np.asarray(classify(images)).reshape(-1).astype(np.int64)
    if len(out) != len(images):
        raise ValueError(f"classify returned {len(out)} labels for {len(images)} images")
    return out


def _titled(img: Image.Image, title: str) -> Image.Image:
    """A line of text above a picture, in visual's bitmap font (the same bytes everywhere)."""
    font = _font()
    zoom = max(1, min(2, img.width // max(1, font.getbbox(title)[2])))
    text, pad = _text(title, font, zoom, TEXT), 4 * zoom
    canvas = Image.new("RGB", (max(img.width, text.width + 2 * pad), img.height + text.height + 2 * pad),
                       (255, 255, 255))
    canvas.paste(text, (pad, pad))
    canvas.paste(img, (0, text.height + 2 * pad))
    return canvas
