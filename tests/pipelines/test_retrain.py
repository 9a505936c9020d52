"""Retraining that decides: the weekly schedule and the image-folder sensor, evaluated with Dagster's own
test utilities against a real temporary directory."""

import os
from pathlib import Path

import dagster as dg
import pytest
from conftest import REPO
from PIL import Image

from pipelines.definitions import defs
from pipelines.resources import GanopsParams
from pipelines.schedules import image_folder_changed, weekly_retrain


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


@pytest.fixture
def folder_project(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    images = tmp_path / "images"
    for i in range(3):
        _png(images / "cats" / f"{i}.png", 10 * i)
    params = GanopsParams(project_root=str(tmp_path), overrides=["data.dataset=image_folder", "data.root=images"])
    return images, {**defs.resources, "params": params}


def _tick(resources, cursor):
    with dg.build_sensor_context(cursor=cursor, resources=resources, instance=dg.DagsterInstance.ephemeral()) as ctx:
        result = image_folder_changed(ctx)
        return result, ctx.cursor


def test_the_sensor_retrains_when_the_folder_gains_loses_or_changes_images(folder_project):
    images, resources = folder_project
    first, cursor = _tick(resources, None)
    assert isinstance(first, dg.SkipReason) and "watching" in first.skip_message and "3 images" in first.skip_message
    same, cursor = _tick(resources, cursor)
    assert isinstance(same, dg.SkipReason)

    os.utime(images / "cats/0.png", (1, 1))                       # touched: same bytes, no retrain
    touched, cursor = _tick(resources, cursor)
    assert isinstance(touched, dg.SkipReason)

    _png(images / "dogs/0.png", 200)                               # gains an image
    gained, cursor = _tick(resources, cursor)
    assert isinstance(gained, dg.RunRequest) and gained.tags["ganops.images"] == "4"

    stat = (images / "cats/1.png").stat()                          # new bytes, same size and mtime
    _png(images / "cats/1.png", 99)
    os.utime(images / "cats/1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed, cursor = _tick(resources, cursor)
    assert isinstance(changed, dg.RunRequest) and changed.run_key != gained.run_key

    (images / "cats/2.png").unlink()                               # loses one
    lost, cursor = _tick(resources, cursor)
    assert isinstance(lost, dg.RunRequest) and lost.tags["ganops.images"] == "3"
    (images / "notes.txt").write_text("not an image")              # a non-image file is no change
    assert isinstance(_tick(resources, cursor)[0], dg.SkipReason)


def test_the_sensor_ignores_datasets_that_are_not_folders(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    resources = {**defs.resources, "params": GanopsParams(project_root=str(tmp_path))}
    result, _ = _tick(resources, None)
    assert isinstance(result, dg.SkipReason) and "digits" in result.skip_message


def test_the_weekly_schedule_runs_the_chain_through_the_champion_decision():
    with dg.build_schedule_context(scheduled_execution_time=None) as ctx:
        requests = list(weekly_retrain.evaluate_tick(ctx).run_requests or [])
    assert len(requests) == 1 and weekly_retrain.cron_schedule == "0 4 * * 1"
    job = defs.resolve_job_def(weekly_retrain.job_name)
    keys = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert {"dataset", "generator/icgan", "evaluator", "evaluation/dcgan", "champion/cgan", "leaderboard"} <= keys
    assert image_folder_changed.job_name == weekly_retrain.job_name
