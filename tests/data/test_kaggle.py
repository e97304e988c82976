"""Kaggle downloads with a fake client: credentials, network failures, idempotency, partial downloads."""

from __future__ import annotations

import inspect
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from aiclassify.data import kaggle
from aiclassify.data.cli import main
from aiclassify.data.kaggle import (
    MARKER_NAME,
    KaggleCredentialsError,
    KaggleError,
    KaggleNetworkError,
    download_dataset,
    find_credentials,
    require_credentials,
)
from aiclassify.data.layouts import detect_layout

ARCHIVE_FILES = ("train/REAL/0.jpg", "train/FAKE/0.jpg", "test/REAL/0.jpg", "test/FAKE/0.jpg")


def _jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


class FakeClient:
    """Writes a small CIFAKE-like zip where ``KaggleApi.dataset_download_files`` would write the real one."""

    def __init__(self, error: BaseException | None = None, corrupt: bool = False):
        self.calls: list[dict] = []
        self.error = error
        self.corrupt = corrupt

    def dataset_download_files(self, dataset, path=None, force=False, quiet=True, unzip=False):
        self.calls.append({"dataset": dataset, "path": path, "force": force, "unzip": unzip})
        if self.error:
            raise self.error
        archive = Path(path) / (dataset.split("/")[1] + ".zip")
        if self.corrupt:
            archive.write_bytes(b"PK\x03\x04 truncated")
            return
        if archive.exists():  # the real client resumes or skips a complete archive
            return
        with zipfile.ZipFile(archive, "w") as bundle:
            for index, name in enumerate(ARCHIVE_FILES):
                bundle.writestr(name, _jpeg(40 * index))


class RefusingClient:
    def dataset_download_files(self, *args, **kwargs):
        raise AssertionError("the client must not be called")


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """An environment with no Kaggle credentials anywhere."""
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_missing_credentials_say_what_to_do(no_credentials):
    assert find_credentials() is None
    with pytest.raises(KaggleCredentialsError) as error:
        require_credentials()
    message = str(error.value)
    hints = ("kaggle.json", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "settings/api", "chmod 600")
    for hint in hints:
        assert hint in message
    assert str(no_credentials / ".kaggle" / "kaggle.json") in message


def test_credentials_are_checked_before_kaggle_is_imported(no_credentials, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "kaggle", None)  # importing kaggle would now fail
    with pytest.raises(KaggleCredentialsError):
        download_dataset("cifake", tmp_path / "cifake", quiet=True)
    assert not (tmp_path / "cifake").exists() and not (tmp_path / ".cifake.partial").exists()


def test_each_credential_source_is_found(no_credentials, monkeypatch, tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "kaggle.json").write_text(json.dumps({"username": "me", "key": "k"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    assert find_credentials() == str(config_dir / "kaggle.json")
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    assert find_credentials() is None  # ~/.kaggle is empty
    (no_credentials / ".kaggle").mkdir()
    (no_credentials / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "me", "key": "k"}))
    assert find_credentials().endswith(".kaggle/kaggle.json")
    assert "KAGGLE_USERNAME" in find_credentials({"KAGGLE_USERNAME": "me", "KAGGLE_KEY": "k"}, tmp_path)
    assert "KAGGLE_API_TOKEN" in find_credentials({"KAGGLE_API_TOKEN": "KGAT_x"}, tmp_path)
    assert find_credentials({"KAGGLE_USERNAME": "me"}, tmp_path) is None  # a user name alone is not enough


def test_broken_kaggle_json_is_reported(no_credentials, monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    (tmp_path / "kaggle.json").write_text('{"username": "me"}')
    with pytest.raises(KaggleCredentialsError, match="must hold"):
        require_credentials()
    (tmp_path / "kaggle.json").write_text("{not json")
    with pytest.raises(KaggleCredentialsError, match="not a readable kaggle.json"):
        require_credentials()


def test_cli_without_credentials_prints_error_and_exits_2(no_credentials, tmp_path, capsys):
    assert main(["download", "cifake", "--dest", str(tmp_path / "cifake")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: No Kaggle credentials found")
    assert "Traceback" not in captured.err


def test_download_extracts_into_dest_with_a_marker(tmp_path):
    client = FakeClient()
    dest = tmp_path / "data" / "cifake"
    result = download_dataset("cifake", dest, client=client, quiet=True, log=lambda _: None)
    assert result.downloaded and result.files == 4 and result.path == dest
    assert client.calls == [
        {
            "dataset": kaggle.KAGGLE_DATASETS["cifake"],
            "path": str(dest.parent / ".cifake.partial"),
            "force": False,
            "unzip": False,
        }
    ]
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.jpg")) == sorted(ARCHIVE_FILES)
    assert json.loads((dest / MARKER_NAME).read_text())["dataset"] == kaggle.KAGGLE_DATASETS["cifake"]
    assert not (dest.parent / ".cifake.partial").exists()
    assert detect_layout(dest) == "cifake"


def test_second_download_does_not_call_the_client(tmp_path):
    dest = tmp_path / "cifake"
    download_dataset("cifake", dest, client=FakeClient(), quiet=True, log=lambda _: None)
    messages = []
    result = download_dataset("cifake", dest, client=RefusingClient(), quiet=True, log=messages.append)
    assert not result.downloaded and result.files == 4
    assert "already downloaded" in messages[0]
    forced = FakeClient()
    again = download_dataset("cifake", dest, client=forced, force=True, quiet=True, log=lambda _: None)
    assert again.downloaded
    assert len(forced.calls) == 1


def test_network_failure_is_a_clear_error_and_leaves_no_dest(tmp_path):
    client = FakeClient(error=ConnectionError("Failed to resolve 'www.kaggle.com'"))
    dest = tmp_path / "cifake"
    with pytest.raises(KaggleNetworkError, match="Could not download from Kaggle.*internet connection"):
        download_dataset("cifake", dest, client=client, quiet=True, log=lambda _: None)
    assert not dest.exists()


def test_http_403_asks_to_check_credentials_and_rules(tmp_path):
    error = OSError("403 Client Error: Forbidden")
    error.response = type("Response", (), {"status_code": 403})()
    with pytest.raises(KaggleCredentialsError, match="HTTP 403.*accept the dataset's rules"):
        download_dataset("faces", tmp_path / "faces", client=FakeClient(error=error), quiet=True, log=print)


def test_cli_network_failure_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    failing = FakeClient(error=ConnectionError("no route to host"))
    monkeypatch.setattr(kaggle, "default_client", lambda: failing)
    assert main(["download", "general", "--dest", str(tmp_path / "general"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Could not download from Kaggle") and "Traceback" not in err


def test_interrupted_extraction_is_redone(tmp_path):
    dest = tmp_path / "cifake"
    staging = tmp_path / ".cifake.partial"
    client = FakeClient()
    staging.mkdir()
    client.dataset_download_files(kaggle.KAGGLE_DATASETS["cifake"], path=str(staging))  # archive complete
    (staging / "extracted" / "train" / "REAL").mkdir(parents=True)
    (staging / "extracted" / "train" / "REAL" / "half-written.jpg").write_bytes(b"\xff\xd8")
    result = download_dataset("cifake", dest, client=client, quiet=True, log=lambda _: None)
    assert result.downloaded and result.files == 4
    assert not (dest / "train" / "REAL" / "half-written.jpg").exists()


def test_corrupt_archive_is_deleted_and_the_next_run_succeeds(tmp_path):
    dest = tmp_path / "cifake"
    with pytest.raises(KaggleError, match="corrupt.*Run the download again"):
        download_dataset("cifake", dest, client=FakeClient(corrupt=True), quiet=True, log=lambda _: None)
    assert not dest.exists()
    assert not list((tmp_path / ".cifake.partial").glob("*.zip"))
    assert download_dataset("cifake", dest, client=FakeClient(), quiet=True, log=lambda _: None).files == 4


def test_existing_folder_without_marker_is_not_overwritten(tmp_path):
    dest = tmp_path / "cifake"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(KaggleError, match="does not hold a completed download"):
        download_dataset("cifake", dest, client=RefusingClient(), quiet=True, log=lambda _: None)
    assert (dest / "mine.txt").read_text() == "keep me"


def test_unknown_key_lists_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="Valid keys: \\['cifake', 'faces', 'general'\\]"):
        download_dataset("imagenet", tmp_path, client=RefusingClient())


def test_installed_kaggle_client_has_the_download_call(no_credentials, monkeypatch):
    pytest.importorskip("kagglesdk")
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0123456789abcdef")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(no_credentials / ".kaggle"))
    try:
        api = kaggle.default_client()  # legacy keys authenticate without the network
    except KaggleError as error:
        pytest.skip(f"kaggle package not usable here: {error}")
    signature = inspect.signature(api.dataset_download_files)
    signature.bind("owner/name", path="x", force=False, quiet=True, unzip=False)
