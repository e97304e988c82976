"""Download the Kaggle datasets the project is built for, safely and only once.

A download goes into a staging folder beside the destination (``.<name>.partial``): the archive is
fetched there (the Kaggle client resumes a partial archive), extracted into ``staging/extracted``,
stamped with a completion marker and only then renamed to the destination. So the destination
either does not exist or holds a complete dataset; a second call finds the marker and returns
without touching the network. Credentials are checked before the ``kaggle`` package is imported,
since some of its versions try to authenticate at import time.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiclassify.data.sources import KAGGLE_DATASETS

MARKER_NAME = ".aiclassify-download.json"
TOKEN_URL = "https://www.kaggle.com/settings/api"


class KaggleError(RuntimeError):
    """A download could not be done; the message says why and what to do."""


class KaggleCredentialsError(KaggleError):
    """No usable Kaggle credentials were found."""


class KaggleNetworkError(KaggleError):
    """Kaggle could not be reached, or answered with an error."""


class KaggleClient(Protocol):
    """The part of ``kaggle.KaggleApi`` used here; tests pass a fake."""

    def dataset_download_files(
        self,
        dataset: str,
        path: str | None = None,
        force: bool = False,
        quiet: bool = True,
        unzip: bool = False,
    ) -> Any:
        """Download the dataset's zip archive into ``path`` (resuming a partial one)."""


@dataclass(frozen=True)
class DownloadResult:
    """Where a dataset was put, and whether this call fetched it."""

    key: str
    dataset: str
    path: Path
    downloaded: bool
    files: int


def find_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> str | None:
    """Describe where Kaggle credentials were found, or None when there are none.

    Looks, in the order the ``kaggle`` client does, at ``KAGGLE_API_TOKEN``, ``KAGGLE_USERNAME`` with
    ``KAGGLE_KEY``, ``kaggle.json`` in ``KAGGLE_CONFIG_DIR`` (or ``~/.kaggle``, or
    ``~/.config/kaggle``), ``~/.kaggle/access_token`` and ``~/.kaggle/credentials.json`` (written by
    ``kaggle auth login``).
    Raises :class:`KaggleCredentialsError` when a ``kaggle.json`` exists but is not usable.
    """
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else Path(home)
    if env.get("KAGGLE_API_TOKEN"):
        return "the KAGGLE_API_TOKEN environment variable"
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "the KAGGLE_USERNAME and KAGGLE_KEY environment variables"
    for config in _config_files(env, home):
        if config.is_file():
            _check_config_file(config)
            return str(config)
    for name in ("access_token", "access_token.txt", "credentials.json"):
        token = home / ".kaggle" / name
        if token.is_file() and token.stat().st_size > 0:
            return str(token)
    return None


def require_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    """Like :func:`find_credentials`, raising :class:`KaggleCredentialsError` with a how-to when none."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else Path(home)
    found = find_credentials(env, home)
    if found:
        return found
    looked = ", ".join(str(p) for p in _config_files(env, home))
    raise KaggleCredentialsError(
        "No Kaggle credentials found. Create an API token at "
        f"{TOKEN_URL} ('Create New Token'), then do one of:\n"
        "  - save the downloaded kaggle.json as ~/.kaggle/kaggle.json (or in $KAGGLE_CONFIG_DIR) "
        "and run: chmod 600 ~/.kaggle/kaggle.json\n"
        "  - export KAGGLE_USERNAME=<your user name> KAGGLE_KEY=<the key from kaggle.json>\n"
        "  - export KAGGLE_API_TOKEN=<the API token>\n"
        f"Looked for kaggle.json in: {looked}. On a machine without internet access, copy the dataset "
        "there by other means and point data.path at it."
    )


def download_dataset(
    key: str,
    dest: Path,
    client: KaggleClient | None = None,
    force: bool = False,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> DownloadResult:
    """Download the Kaggle dataset ``key`` (see ``KAGGLE_DATASETS``) into the folder ``dest``.

    A complete earlier download (its marker is present) is kept and not fetched again unless
    ``force``; a partial one is resumed (the archive) and extracted afresh. ``client`` defaults to an
    authenticated ``kaggle.KaggleApi``, created only after the credentials are found.
    """
    if key not in KAGGLE_DATASETS:
        raise ValueError(f"Unknown dataset key. Valid keys: {sorted(KAGGLE_DATASETS)}. Received: key={key!r}")
    dataset = KAGGLE_DATASETS[key]
    dest = Path(dest)
    marker = read_marker(dest)
    if marker and marker.get("dataset") == dataset and not force:
        log(f"{dataset} is already downloaded in {dest} (pass --force to fetch it again).")
        return DownloadResult(key, dataset, dest, downloaded=False, files=int(marker.get("files", 0)))
    if dest.exists() and not force and (not dest.is_dir() or any(dest.iterdir())):
        raise KaggleError(
            f"{dest} already exists and does not hold a completed download of {dataset}. "
            "Choose another --dest, or pass --force to replace it."
        )
    if client is None:
        client = default_client()
    staging = dest.parent / f".{dest.name}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    log(f"Downloading {dataset} into {staging} ...")
    archive = _fetch(client, dataset, staging, quiet)
    extracted = staging / "extracted"
    if extracted.exists():
        shutil.rmtree(extracted)  # an earlier extraction was interrupted: redo it
    files = _extract(archive, extracted, quiet, log)
    _write_marker(extracted, {"dataset": dataset, "key": key, "files": files, "archive": archive.name})
    if dest.is_dir():
        shutil.rmtree(dest)
    elif dest.exists():
        dest.unlink()
    extracted.rename(dest)
    shutil.rmtree(staging, ignore_errors=True)
    log(f"{dataset}: {files} files in {dest}")
    return DownloadResult(key, dataset, dest, downloaded=True, files=files)


def read_marker(dest: Path) -> dict[str, Any] | None:
    """The completion marker of a download in ``dest``, or None when there is no complete download."""
    try:
        return json.loads((Path(dest) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def default_client() -> KaggleClient:
    """An authenticated ``KaggleApi``; checks the credentials before importing ``kaggle``."""
    require_credentials()
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as error:
        raise KaggleError(
            f"The kaggle package is not installed ({error}). Install it with: pip install 'aiclassify[data]'"
        ) from None
    except (Exception, SystemExit) as error:  # some versions authenticate (and exit) at import time
        raise KaggleCredentialsError(f"The kaggle package refused the credentials: {error}") from None
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:
        raise KaggleCredentialsError(
            "The kaggle client could not authenticate: the credentials were rejected, or (for "
            f"KAGGLE_API_TOKEN) Kaggle could not be reached to check them. A new token: {TOKEN_URL}."
        ) from None
    except Exception as error:
        raise _network_error(error) from None
    return api


def _fetch(client: KaggleClient, dataset: str, staging: Path, quiet: bool) -> Path:
    """Let the client download the zip into ``staging`` (it resumes a partial file) and return it."""
    started = time.monotonic()
    try:
        client.dataset_download_files(dataset, path=str(staging), force=False, quiet=quiet, unzip=False)
    except KaggleError:
        raise
    except SystemExit as error:
        raise KaggleCredentialsError(
            f"The kaggle client gave up (exit {error.code}); check the credentials."
        ) from None
    except Exception as error:
        raise _network_error(error) from None
    archives = sorted(staging.glob("*.zip"), key=lambda p: p.stat().st_mtime)
    if not archives:
        raise KaggleError(f"The Kaggle client finished but left no .zip archive in {staging}.")
    if not quiet:
        size = archives[-1].stat().st_size / 1e6
        print(f"Fetched {archives[-1].name} ({size:.1f} MB) in {time.monotonic() - started:.0f} s")
    return archives[-1]


def _extract(archive: Path, target: Path, quiet: bool, log: Callable[[str], None]) -> int:
    """Extract ``archive`` into ``target`` with a progress bar; a corrupt archive is deleted."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if not m.is_dir()]
            target.mkdir(parents=True)
            root = target.resolve()
            bar = _progress(len(members), f"Extracting {archive.name}", quiet)
            for member in members:
                destination = (target / member.filename).resolve()
                if not destination.is_relative_to(root):
                    raise KaggleError(f"{archive} holds an unsafe path: {member.filename}")
                bundle.extract(member, target)
                bar.update(1)
            bar.close()
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
        archive.unlink(missing_ok=True)
        raise KaggleError(
            f"The downloaded archive {archive} is corrupt ({error}); it was deleted. Run the download again."
        ) from None
    log(f"Extracted {len(members)} files")
    return len(members)


def _progress(total: int, description: str, quiet: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="file", disable=quiet, mininterval=0.5)


def _write_marker(folder: Path, content: dict[str, Any]) -> None:
    content = {**content, "completed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (folder / MARKER_NAME).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def _network_error(error: BaseException) -> KaggleError:
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        return KaggleCredentialsError(
            f"Kaggle refused access (HTTP {status}): check the credentials, and accept the dataset's "
            f"rules on its Kaggle page if it has any. ({error})"
        )
    if status == 404:
        return KaggleNetworkError(f"Kaggle has no such dataset (HTTP 404): {error}")
    return KaggleNetworkError(
        f"Could not download from Kaggle: {type(error).__name__}: {error}. Check the internet connection "
        "(and any proxy), then run the command again: a partial download is resumed."
    )


def _config_files(env: Mapping[str, str], home: Path) -> list[Path]:
    if env.get("KAGGLE_CONFIG_DIR"):
        return [Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json"]
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return [home / ".kaggle" / "kaggle.json", xdg / "kaggle" / "kaggle.json"]


def _check_config_file(config: Path) -> None:
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise KaggleCredentialsError(f"{config} is not a readable kaggle.json ({error}).") from None
    if not isinstance(values, dict) or not values.get("username") or not values.get("key"):
        raise KaggleCredentialsError(
            f'{config} must hold {{"username": "...", "key": "..."}}; download a new one from {TOKEN_URL}.'
        )
