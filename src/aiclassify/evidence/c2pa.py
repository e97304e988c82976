"""Content Credentials (C2PA), read from memory with c2pa-python, offline.

The manifest store embedded in the file is read with ``c2pa.Reader`` from an in-memory stream, with
settings that keep it off the network: ``verify.remote_manifest_fetch`` and ``verify.ocsp_fetch``
off, ``core.allowed_network_hosts`` empty. Reported: the validation state, the claim generator,
the signer (issuer and common name of the signing certificate), and every action's
``digitalSourceType`` in every manifest of the store.

Validation states (c2pa-rs ``validation_state`` → ours):

- ``Trusted`` → ``valid``: the signature and every hash check out, and the signing certificate
  chains to an anchor of the trust list configured here: ``strong``;
- ``Valid`` → ``untrusted``: intact and well signed, but by a certificate not on the configured
  trust list (anyone can make one): ``weak``;
- ``Invalid`` → ``invalid``: the file or the manifest was changed after signing, or the
  signature is broken: ``weak`` (what it declares was declared by someone, then altered).

The trust list is offline: :data:`TRUST_ANCHORS_ENV` names a PEM file of trust anchors (for example
the C2PA trust list, downloaded by you); without it no signer is trusted and every intact manifest
is ``untrusted``. Reading runs in a worker thread and is abandoned after :data:`TIMEOUT_S` seconds
(``unreadable``), as is any file over :data:`MAX_INPUT_BYTES`. Without c2pa-python installed the
finding ``c2pa_not_checked`` says that Content Credentials were not checked.
"""

from __future__ import annotations

import functools
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

from aiclassify.evidence.findings import AI_SOURCE_TYPES, Finding, safe_text, unreadable

TRUST_ANCHORS_ENV = "AICLASSIFY_C2PA_TRUST_ANCHORS"
TIMEOUT_S = 5.0
MAX_INPUT_BYTES = 64 << 20
MAX_ACTIONS = 32
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WebP": "image/webp"}
STATES = {"trusted": "valid", "valid": "untrusted", "invalid": "invalid"}
OFFLINE_SETTINGS: dict[str, Any] = {
    "verify": {
        "verify_after_reading": True,
        "verify_trust": True,
        "remote_manifest_fetch": False,
        "ocsp_fetch": False,
    },
    "core": {"allowed_network_hosts": []},
}


def available() -> bool:
    """Whether c2pa-python can be imported here."""
    try:
        import c2pa  # noqa: F401
    except Exception:  # ImportError, or OSError loading the native library
        return False
    return True


def trust_anchors() -> tuple[str | None, str | None]:
    """(PEM text of the configured trust anchors or None, a problem reading them or None)."""
    path = os.environ.get(TRUST_ANCHORS_ENV, "").strip()
    if not path:
        return None, None
    try:
        return _read_pem(path, Path(path).stat().st_mtime_ns), None
    except (OSError, ValueError) as error:
        return None, f"{TRUST_ANCHORS_ENV}={path} could not be read ({error}); no signer is trusted"


@functools.lru_cache(maxsize=4)
def _read_pem(path: str, _mtime: int) -> str:
    text = Path(path).read_text(encoding="ascii")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("no PEM certificate in it")
    return text


def settings() -> tuple[dict[str, Any], str | None]:
    """The reader settings (offline, with the configured trust anchors) and a trust-list problem."""
    anchors, problem = trust_anchors()
    config = json.loads(json.dumps(OFFLINE_SETTINGS))
    if anchors:
        config["trust"] = {"trust_anchors": anchors}
    return config, problem


def c2pa_findings(data: bytes, image_format: str | None) -> list[Finding]:
    """The findings about ``data``'s Content Credentials (never raises, never waits past TIMEOUT_S)."""
    if not available():
        return [
            Finding(
                "c2pa",
                "c2pa_not_checked",
                "info",
                "Content Credentials were not checked: c2pa-python is not installed",
            )
        ]
    if len(data) > MAX_INPUT_BYTES:
        return [unreadable("c2pa", f"file of {len(data)} bytes, over the {MAX_INPUT_BYTES}-byte limit")]
    config, problem = settings()
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["store"] = _read_store(data, MIME_TYPES.get(image_format or ""), config)
        except BaseException as error:  # noqa: BLE001 - reported, never raised
            result["error"] = error

    worker = threading.Thread(target=work, name="c2pa-reader", daemon=True)
    worker.start()
    worker.join(TIMEOUT_S)
    if worker.is_alive():
        return [unreadable("c2pa", f"reading the manifest took over {TIMEOUT_S:g} s; abandoned")]
    if "error" in result:
        error = result["error"]
        if "NotSupported" in type(error).__name__:
            return [
                Finding(
                    "c2pa",
                    "c2pa_not_checked",
                    "info",
                    "Content Credentials were not checked: c2pa-python does not read this file format",
                )
            ]
        if "must fetch remote manifests" in str(error) or "RemoteManifest" in type(error).__name__:
            return [
                Finding(
                    "c2pa",
                    "c2pa_remote",
                    "info",
                    f"the file points to remote Content Credentials ({safe_text(error)}); not fetched "
                    "(nothing is read from the network here), so not checked: no evidence either way",
                )
            ]
        return [unreadable("c2pa", f"manifest store: {type(error).__name__}: {error}")]
    store = result.get("store")
    if store is None:
        return [
            Finding(
                "c2pa",
                "c2pa_absent",
                "info",
                "no Content Credentials (C2PA manifest) embedded: most images have none, and "
                "re-saving or uploading usually removes them, so their absence says nothing",
            )
        ]
    return _store_findings(store, problem)


def _read_store(data: bytes, mime: str | None, config: dict[str, Any]) -> dict[str, Any] | None:
    import c2pa

    context = c2pa.Context.from_dict(config)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        if reader is None:
            return None
        with reader:
            return json.loads(reader.json())
    finally:
        context.close()


def _store_findings(store: dict[str, Any], trust_problem: str | None) -> list[Finding]:
    manifests = store.get("manifests") if isinstance(store.get("manifests"), dict) else {}
    active = manifests.get(store.get("active_manifest")) or {}
    raw_state = str(store.get("validation_state") or "invalid")
    state = STATES.get(raw_state.lower(), "invalid")
    types = []
    for manifest in manifests.values():
        for action in _actions(manifest)[:MAX_ACTIONS]:
            source_type = action.get("digitalSourceType")
            if isinstance(source_type, str):
                types.append((str(action.get("action", "?")), source_type))
    ai = any(uri.rstrip("/").rsplit("/", 1)[-1] in AI_SOURCE_TYPES for _, uri in types)
    generator = _generator(active)
    signature = active.get("signature_info") if isinstance(active.get("signature_info"), dict) else {}
    signer = (
        ", ".join(safe_text(signature[key], 80) for key in ("common_name", "issuer") if signature.get(key))
        or "unknown"
    )
    failures = _failures(store)
    declared = (
        "declares generative AI" if ai else "does not declare generative AI"
    ) + f" (digital source types: {', '.join(safe_text(f'{a}: {t}', 120) for a, t in types) or 'none'})"
    meaning = {
        "valid": "signed by a certificate on the configured trust list, unchanged since signing: the "
        "signer vouches for this history (not that the signer is honest about it)",
        "untrusted": "intact, but signed by a certificate that is not on the configured trust list: "
        "anyone can make such a certificate, so it shows what someone declared, not who",
        "invalid": "the file or its manifest changed after signing, or the signature is broken: what "
        "it declares cannot be relied on",
    }[state]
    detail = (
        f"Content Credentials {state} ({safe_text(raw_state, 20)}); claim generator {generator}; "
        f"signer {signer}; {declared}; {meaning}"
    )
    if failures:
        detail += f"; failures: {failures}"
    if trust_problem:
        detail += f"; {safe_text(trust_problem)}"
    strength = "strong" if state == "valid" else "weak"
    return [Finding("c2pa", "c2pa_manifest", strength, detail, ai, state)]


def _actions(manifest: Any) -> list[dict[str, Any]]:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("assertions"), list):
        return []
    actions = []
    for assertion in manifest["assertions"]:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data") if isinstance(assertion.get("data"), dict) else {}
        actions += [a for a in data.get("actions") or [] if isinstance(a, dict)]
    return actions


def _generator(manifest: dict[str, Any]) -> str:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        name = " ".join(str(info[0].get(k)) for k in ("name", "version") if info[0].get(k))
        return safe_text(name, 80) or "unknown"
    return safe_text(manifest.get("claim_generator") or "unknown", 80)


def _failures(store: dict[str, Any]) -> str:
    results = store.get("validation_results")
    codes = []
    if isinstance(results, dict):
        active = results.get("activeManifest") if isinstance(results.get("activeManifest"), dict) else {}
        codes = [str(item.get("code")) for item in active.get("failure") or [] if isinstance(item, dict)]
    if not codes and isinstance(store.get("validation_status"), list):
        codes = [str(item.get("code")) for item in store["validation_status"] if isinstance(item, dict)]
    return safe_text(", ".join(codes[:5]), 200)
