"""The deploy container's spec, as data: no Docker here (tests/image/test_image.py runs it)."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from dispatcher.core.secrets import split_env
from dispatcher.launchers.common import BUILD_MOUNT, format_env_file
from dispatcher.launchers.docker import files as container
from dispatcher.launchers.docker.files import write_secrets_file
from dispatcher.launchers.docker.spec import (
    SECRETS_MOUNT,
    Limits,
    docker_run_argv,
    docker_run_command,
    runner_container_spec,
)

BUILD = "/srv/builds/shop"
SECRETS = "/dev/shm/forge-deploy-d1-1/secrets.env"
COMMAND = ["deploy", "--build-dir", "/build", "--name", "shop"]


def spec(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "image": "forge-runner:dev",
        "deployment_id": "d1",
        "attempt": 1,
        "build_dir": BUILD,
        "secrets_file": SECRETS,
        "command": COMMAND,
    }
    args.update(overrides)
    return runner_container_spec(**args)  # type: ignore[arg-type]


def test_name_and_labels_are_deterministic_and_per_attempt() -> None:
    first, again, second = spec(), spec(), spec(attempt=2)
    assert first == again
    assert first["name"] == "forge-deploy-d1-1"
    assert second["name"] == "forge-deploy-d1-2"
    assert first["labels"] == {"forge.deploy_id": "d1", "forge.attempt": "1"}
    assert second["labels"] == {"forge.deploy_id": "d1", "forge.attempt": "2"}


@pytest.mark.parametrize("deploy_id", ["", "a b", "x/y", "a" * 65, "-$(id)"])
def test_bad_deploy_ids_are_refused(deploy_id: str) -> None:
    with pytest.raises(ValueError, match="deployment id"):
        spec(deployment_id=deploy_id)


def test_attempt_starts_at_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        spec(attempt=0)


def test_hardening() -> None:
    s = spec()
    assert s["user"] == "10001:10001"
    assert s["read_only"] is True
    assert s["cap_drop"] == ["ALL"]
    assert s["security_opt"] == ["no-new-privileges:true"]
    assert s["mem_limit"] == 2 * 1024**3
    assert s["memswap_limit"] == s["mem_limit"]  # no swap
    assert s["nano_cpus"] == 1_000_000_000
    assert s["pids_limit"] == 512
    assert s["network_mode"] == "bridge"
    assert s["tty"] is False and s["stdin_open"] is False
    assert "privileged" not in s and "cap_add" not in s and "volumes" not in s


def test_tmpfs_are_size_limited_and_private() -> None:
    tmpfs = spec(limits=Limits(tmp_size="300m", work_size="64m", home_size="32m"))["tmpfs"]
    assert isinstance(tmpfs, dict)
    assert set(tmpfs) == {"/tmp", "/work", "/home/forge"}
    assert "size=300m" in tmpfs["/tmp"] and "mode=1777" in tmpfs["/tmp"]
    for path, size in (("/work", "64m"), ("/home/forge", "32m")):
        options = tmpfs[path].split(",")
        assert f"size={size}" in options
        assert {"mode=0700", "uid=10001", "gid=10001", "nosuid", "nodev"} <= set(options)


def test_mounts_are_read_only_binds_and_never_the_docker_socket() -> None:
    s = spec(read_only_files=["/var/lib/forge/ca.pem"])
    mounts = s["mounts"]
    assert mounts == [
        {"Type": "bind", "Source": BUILD, "Target": BUILD_MOUNT, "ReadOnly": True},
        {"Type": "bind", "Source": SECRETS, "Target": SECRETS_MOUNT, "ReadOnly": True},
        {
            "Type": "bind",
            "Source": "/var/lib/forge/ca.pem",
            "Target": "/var/lib/forge/ca.pem",
            "ReadOnly": True,
        },
    ]
    for sock in ("/var/run/docker.sock", "/run/docker.sock"):
        with pytest.raises(ValueError, match="Docker socket"):
            spec(read_only_files=[sock])


@pytest.mark.parametrize("path", ["/build", "/build/x", SECRETS_MOUNT, "relative/ca.pem"])
def test_extra_files_cannot_shadow_the_spec(path: str) -> None:
    with pytest.raises(ValueError, match="read-only file"):
        spec(read_only_files=[path])


def test_host_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="build_dir"):
        spec(build_dir="builds/shop")
    with pytest.raises(ValueError, match="secrets_file"):
        spec(secrets_file="secrets.env")


def test_environment_carries_config_and_the_env_file_path_never_a_token() -> None:
    s = spec(env={"GH_ORG": "acme", "FORGE_SEAL_PUBLIC_KEY": "cHVibGlj"})
    assert s["environment"] == {
        "GH_ORG": "acme",
        "FORGE_SEAL_PUBLIC_KEY": "cHVibGlj",
        "FORGE_DEPLOY_ID": "d1",
        "FORGE_ENV_FILE": SECRETS_MOUNT,
    }


@pytest.mark.parametrize(
    "name",
    [
        "GH_TOKEN",
        "GH_ENTERPRISE_TOKEN",
        "SUPABASE_ACCESS_TOKEN",
        "VERCEL_TOKEN",
        "FORGE_SEAL_PRIVATE_KEY",
        "DB_PASSWORD",
        "SOME_API_KEY",
        "client_secret",
    ],
)
def test_secret_names_are_refused_in_the_environment(name: str) -> None:
    with pytest.raises(ValueError, match="secrets file"):
        spec(env={name: "value-123456"})


def test_the_spec_owns_deploy_id_and_env_file() -> None:
    assert spec(env={"FORGE_DEPLOY_ID": "d1"})["environment"]["FORGE_DEPLOY_ID"] == "d1"  # type: ignore[index]
    with pytest.raises(ValueError, match="FORGE_DEPLOY_ID"):
        spec(env={"FORGE_DEPLOY_ID": "other"})
    with pytest.raises(ValueError, match="FORGE_ENV_FILE"):
        spec(env={"FORGE_ENV_FILE": "/elsewhere"})


def test_limits_are_checked() -> None:
    for bad in (Limits(memory="2x"), Limits(memory="1m"), Limits(cpus=0), Limits(pids=1)):
        with pytest.raises(ValueError, match=r"memory|limits|size"):
            spec(limits=bad)
    s = spec(limits=Limits(memory="768m", cpus=1.5, pids=256))
    assert (s["mem_limit"], s["nano_cpus"], s["pids_limit"]) == (768 * 1024**2, 1_500_000_000, 256)


def test_split_env_puts_tokens_aside() -> None:
    plain, secret = split_env(
        {"GH_TOKEN": "t1", "GH_ORG": "o", "VERCEL_TOKEN": "t2", "FORGE_CA_FILE": "/ca.pem"}
    )
    assert plain == {"GH_ORG": "o", "FORGE_CA_FILE": "/ca.pem"}
    assert secret == {"GH_TOKEN": "t1", "VERCEL_TOKEN": "t2"}


def test_docker_run_argv_has_the_same_flags() -> None:
    s = spec(
        env={"GH_ORG": "acme org"},
        network="host",
        limits=Limits(memory="768m", cpus=1.5, pids=256),
    )
    argv = docker_run_argv(s)
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[-6:] == ["forge-runner:dev", *COMMAND]

    options = argv[:-6]  # the command's own flags (`--name shop`) are not docker's

    def flag(name: str) -> list[str]:
        return [options[i + 1] for i, a in enumerate(options) if a == name]

    assert flag("--name") == ["forge-deploy-d1-1"]
    assert flag("--label") == ["forge.deploy_id=d1", "forge.attempt=1"]
    assert flag("--user") == ["10001:10001"]
    assert "--read-only" in options
    assert flag("--cap-drop") == ["ALL"]
    assert flag("--security-opt") == ["no-new-privileges:true"]
    assert flag("--memory") == ["768m"] and flag("--memory-swap") == ["768m"]
    assert flag("--cpus") == ["1.5"]
    assert flag("--pids-limit") == ["256"]
    assert flag("--network") == ["host"]
    assert flag("--mount") == [
        f"type=bind,src={BUILD},dst=/build,readonly",
        f"type=bind,src={SECRETS},dst={SECRETS_MOUNT},readonly",
    ]
    assert [t.split(":", 1)[0] for t in flag("--tmpfs")] == ["/tmp", "/work", "/home/forge"]
    assert flag("--env") == [
        "GH_ORG=acme org",
        "FORGE_DEPLOY_ID=d1",
        f"FORGE_ENV_FILE={SECRETS_MOUNT}",
    ]
    assert "-v" not in options and "--volume" not in options  # -v would create a missing host path


def test_docker_run_command_is_one_shell_line_that_splits_back() -> None:
    s = spec(env={"GH_ORG": "acme org"})
    line = docker_run_command(s, docker="/usr/bin/docker", rm=False)
    assert "\n" not in line
    assert shlex.split(line) == docker_run_argv(s, docker="/usr/bin/docker", rm=False)
    assert "--rm" not in shlex.split(line)


TRICKY = {
    "GH_TOKEN": "ghp_plain0123456789",
    "QUOTED": 'it\'s a "token" with \\ backslash',
    "HASH": "abc #not-a-comment",
    "EQUALS": "a=b=c",
    "SPACES": "  padded  ",
    "DOLLAR": "cost$5 and $HOME",
}


def test_env_file_round_trips_through_the_runner_settings_reader(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(format_env_file(TRICKY))
    assert dotenv_values(path) == TRICKY  # `$HOME` stays: python-dotenv expands only `${...}`


@pytest.mark.parametrize("value", ["two\nlines", "cr\r", "nul\0", "expands ${HOME}"])
def test_env_file_refuses_values_that_cannot_round_trip(value: str) -> None:
    with pytest.raises(ValueError, match="TOKEN"):
        format_env_file({"TOKEN": value})


def test_write_secrets_file(tmp_path: Path) -> None:
    path = write_secrets_file({"GH_TOKEN": "ghp_abcdefgh"}, "d1", 3, root=tmp_path)
    assert path == tmp_path / "forge-deploy-d1-3" / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    if os.geteuid() == 0:
        assert (path.stat().st_uid, path.stat().st_gid) == (10001, 10001)
    assert dotenv_values(path) == {"GH_TOKEN": "ghp_abcdefgh"}
    # A retried write replaces the file.
    again = write_secrets_file({"GH_TOKEN": "ghp_zyxwvuts"}, "d1", 3, root=tmp_path)
    assert dotenv_values(again) == {"GH_TOKEN": "ghp_zyxwvuts"}
    container.remove_secrets_file("d1", 3, root=tmp_path)
    assert not path.parent.exists()


def test_write_secrets_file_refuses_a_planted_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "forge-deploy-d1-1").symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="not a directory of ours"):
        write_secrets_file({"GH_TOKEN": "ghp_abcdefgh"}, "d1", 1, root=tmp_path)
    assert list(elsewhere.iterdir()) == []
