"""TensorFlow's client facts under MPI and alone (rules D-CF-1 to D-CF-3, D-MU-1, D-TE-5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dtckpt import dtensor as dd
from dtckpt.comm import set_world
from dtckpt.dtensor import accelerator, config
from dtckpt.errors import InvalidArgumentError
from tests.mpi import run_ranks


def test_client_facts_under_mpi() -> None:
    jobs = "localhost:10001,localhost:10002,localhost:10003"
    env = {"DTENSOR_JOBS": jobs, "DTENSOR_NUM_CLIENTS": "3"}
    run_ranks(3, "tests.dtensor.multiclient_ranks:config_facts", jobs.split(","), env=env)


def test_a_mismatched_client_id_is_refused_naming_both() -> None:
    # Rank r is told it is client 1 - r.
    run_ranks(
        2,
        "tests.dtensor.multiclient_ranks:mismatched_environment",
        per_rank_env={"DTENSOR_CLIENT_ID": ["1", "0"]},
    )


@pytest.fixture
def fresh_system(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = dict(config._DEVICE_COUNTS)
    for name in ("DTENSOR_JOBS", "DTENSOR_CLIENT_ID", "DTENSOR_NUM_CLIENTS", "DTENSOR_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    accelerator._INITIALIZED.clear()
    yield
    accelerator._INITIALIZED.clear()
    config._DEVICE_COUNTS.clear()
    config._DEVICE_COUNTS.update(saved)
    set_world(None)


def test_initialize_and_shutdown_alone(fresh_system: None) -> None:
    with pytest.raises(InvalidArgumentError, match="is not initialized"):
        dd.shutdown_accelerator_system()
    assert dd.initialize_accelerator_system(num_logical_cpu_devices=4) == "CPU"
    assert dd.num_local_devices("CPU") == 4 and dd.num_clients() == 1
    with pytest.raises(InvalidArgumentError, match="has already been initialized"):
        dd.initialize_tpu_system()
    dd.shutdown_tpu_system()
    with pytest.raises(InvalidArgumentError, match="Unknown device_type XPU"):
        dd.initialize_accelerator_system("xpu")


def test_environment_checked_against_a_lone_process(
    fresh_system: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DTENSOR_JOBS", "localhost:1,localhost:2")
    with pytest.raises(InvalidArgumentError) as caught:
        dd.num_clients()
    assert str(caught.value) == (
        "DTENSOR_JOBS names 2 clients but this program has 1 process: launch the clients with "
        "mpiexec (or give initialize_accelerator_system a communicator)"
    )
    monkeypatch.setenv("DTENSOR_JOBS", "localhost:1")
    monkeypatch.setenv("DTENSOR_JOB_NAME", "trainer")
    assert dd.jobs() == ["localhost:1"] and dd.job_name() == "trainer"
    monkeypatch.setenv("DTENSOR_NUM_CLIENTS", "3")
    with pytest.raises(InvalidArgumentError, match="DTENSOR_NUM_CLIENTS=3 but this program has 1"):
        dd.client_id()
    monkeypatch.setenv("DTENSOR_NUM_CLIENTS", "x")
    with pytest.raises(InvalidArgumentError, match="is not an integer"):
        dd.client_id()


def test_a_single_client_mesh_cannot_be_saved_by_several(fresh_system: None) -> None:
    from dtckpt.dtensor.placement import MeshPlacement, _placement

    mesh = dd.create_mesh([("x", 4)])
    assert _placement(mesh, 1, 0).client_of(3) == 0
    with pytest.raises(InvalidArgumentError, match="create_distributed_mesh"):
        _placement(mesh, 2, 1)
    with pytest.raises(InvalidArgumentError, match="cannot be shared evenly by 3 clients"):
        MeshPlacement(mesh, 3)
