"""The launch contract read from the environment, each rank's share of a global batch, and the one-line
failure a rank leaves for its launcher."""

import json

import pytest
import torch

from ganops.core import distributed as D


def test_the_launchers_variables_name_the_rank_and_a_plain_process_is_a_world_of_one():
    assert D.launched({}) is None
    assert D.launched({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == (3, 8, 1)          # torchrun, k8s
    slurm = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1",
             "MASTER_ADDR": "node0"}
    assert D.launched(slurm) == (5, 16, 1)                                                     # srun alone
    assert D.launched({k: v for k, v in slurm.items() if k != "MASTER_ADDR"}) is None         # no rendezvous
    assert D.launched({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "MASTER_ADDR": "x"}) is None  # sbatch, no srun
    with pytest.raises(D.DistributedError, match="RANK='one'"):
        D.launched({"RANK": "one", "WORLD_SIZE": "2"})
    one = D.world()
    assert not one.grouped and one.main and one.share(64) == slice(0, 64)
    t = torch.ones(3)
    assert one.mean(t) is t and one.gather("x") == ["x"]


def test_the_ranks_shares_cover_the_global_batch_once_and_an_uneven_batch_is_refused():
    shares = [D.World(rank=r, size=4).share(64) for r in range(4)]
    rows = torch.cat([torch.arange(64)[s] for s in shares])
    assert torch.equal(rows, torch.arange(64))
    with pytest.raises(D.DistributedError, match=r"train.batch_size=30 is the global batch.* multiple of 4$"):
        D.World(rank=0, size=4).check_batch(30, "train.batch_size")


def test_a_ranks_failure_goes_where_the_launchers_read_it(tmp_path):
    torchrun_file, ours = tmp_path / "error.json", tmp_path / "errors"
    ours.mkdir()
    env = {D.ERROR_FILE_ENV: str(torchrun_file), D.ERRORS_DIR_ENV: str(ours), "RANK": "1", "WORLD_SIZE": "2"}
    assert D.report_failure("rank 1: out of memory", env)
    assert json.loads(torchrun_file.read_text())["message"] == "rank 1: out of memory"
    assert json.loads((ours / "rank1.json").read_text())["message"] == "rank 1: out of memory"
    assert not D.report_failure("x", {})                       # no launcher: the caller prints it
    assert D.lost_peer(RuntimeError("Connection closed by peer")) is None   # not in a process group


def test_the_distributed_section_is_checked_and_becomes_torchruns_command_line():
    from ganops.core import launch
    from ganops.core import params as P

    for bad in ("distributed.rdzv_endpoint=:abc", "distributed.rdzv_endpoint=node0", "distributed.backend=mpi",
                "distributed.nproc_per_node=0"):
        with pytest.raises(P.ParamsError, match=bad.split("=")[0]):
            P.load(None, [bad])
    one_node = launch.torchrun_args(P.load(None, ["distributed.nproc_per_node=4"]), ["stage", "train"])
    assert one_node[:4] == ["--nproc-per-node", "4", "--nnodes", "1"] and "--standalone" in one_node
    nodes = launch.torchrun_args(P.load(None, ["distributed.nnodes=2", "distributed.rdzv_endpoint=n0:29400",
                                               "distributed.timeout_s=30"]), ["stage", "train"])
    assert nodes[nodes.index("--rdzv-endpoint") + 1] == "n0:29400" and "join_timeout=30,read_timeout=30" in nodes
    assert nodes[-4:] == ["-m", "ganops", "stage", "train"]
    # outside every artifact's identity: a world size never makes an artifact stale
    from ganops.core import identity as I

    for stage in ("train", "embeddings", "evaluator", "transfer"):
        assert "distributed" not in I.identity(P.load(None, ["distributed.nproc_per_node=8"]), stage)
