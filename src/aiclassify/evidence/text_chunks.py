"""Generator settings written as text: PNG ``tEXt``/``iTXt``/``zTXt`` chunks, JPEG comments, EXIF
``UserComment`` (how the same tools save JPEG and WebP).

Recognised (keyword: tool):

- ``parameters``: AUTOMATIC1111 Stable Diffusion web UI, or Forge when its ``Version`` starts with
  ``f``; the text is the prompt, an optional ``Negative prompt:`` line and a ``Steps: ...`` line of
  settings. JPEG and WebP files from these tools carry the same text as EXIF ``UserComment``;
- ``prompt`` (the API graph) and ``workflow`` (the editor graph): ComfyUI, JSON;
- ``invokeai_metadata`` (InvokeAI 3 and later) and ``sd-metadata`` (older InvokeAI): JSON;
- ``Software`` ``NovelAI`` with ``Comment`` (JSON settings) and ``Description`` (the prompt);
- any other ``Software`` value on the generator list of :mod:`aiclassify.evidence.exif`.

Each gives the tool and its settings (model, sampler, steps, seed, size...), the prompt truncated
to :data:`~aiclassify.evidence.findings.MAX_TEXT` characters, every value with its control
characters escaped. Such text proves nothing (anyone can write it into any file, and it is lost on
any re-save by most software) but nobody writes it by accident: ``weak``, and counted by the
``declared`` rule as unsigned metadata.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiclassify.evidence.containers import MAX_BLOCK_BYTES
from aiclassify.evidence.findings import Finding, decode_text, safe_text, unreadable

MAX_JSON_BYTES = MAX_BLOCK_BYTES
MAX_SETTINGS = 12  # settings shown per finding
A1111_KEYS = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Seed",
    "Size",
    "Model",
    "Model hash",
    "Denoising strength",
    "Version",
)
MEANING = "unsigned text anyone can write or strip; nobody writes it by accident"


def text_findings(texts: list[tuple[str, bytes]], user_comments: list[bytes]) -> list[Finding]:
    """The findings of a file's text blocks and EXIF UserComments (never raises)."""
    values = {}
    for keyword, raw in texts:
        values.setdefault(keyword, raw)
    findings: list[Finding] = []
    handlers = (
        ("parameters", _a1111),
        ("prompt", _comfy_prompt),
        ("workflow", _comfy_workflow),
        ("invokeai_metadata", _invoke),
        ("sd-metadata", _invoke),
    )
    for keyword, handler in handlers:
        if keyword in values:
            findings += _guarded(handler, decode_text(values[keyword]), keyword)
    if "Software" in values:
        findings += _guarded(_software, decode_text(values["Software"]), "Software", values)
    if "JPEG comment" in values and "parameters" not in values:
        comment = decode_text(values["JPEG comment"])
        if "Steps: " in comment:
            findings += _guarded(_a1111, comment, "JPEG comment")
    if "parameters" not in values:
        for raw in user_comments[:1]:
            comment = _user_comment(raw)
            if "Steps: " in comment:
                findings += _guarded(_a1111, comment, "EXIF UserComment")
    return findings


def _guarded(handler, text: str, keyword: str, *extra: Any) -> list[Finding]:
    try:
        return handler(text, keyword, *extra)
    except Exception as error:  # RecursionError from absurdly nested JSON, anything unforeseen
        return [unreadable("text_chunks", f"{keyword}: {type(error).__name__}")]


def _finding(tool: str, keyword: str, settings: dict[str, Any], prompt: str | None) -> Finding:
    shown = ", ".join(
        f"{safe_text(k, 40)}: {safe_text(v, 80)}"
        for k, v in list(settings.items())[:MAX_SETTINGS]
        if v not in (None, "")
    )
    detail = f"{tool} settings in {safe_text(keyword, 40)}"
    if shown:
        detail += f" ({shown})"
    if prompt:
        detail += f"; prompt: {safe_text(prompt.strip())}"
    return Finding("text_chunks", "generator_parameters", "weak", f"{detail}; {MEANING}", True)


def _a1111(text: str, keyword: str) -> list[Finding]:
    lines = text.strip().split("\n")
    settings_line = next((line for line in reversed(lines) if line.startswith("Steps: ")), "")
    prompt_lines = []
    for line in lines:
        if line.startswith(("Negative prompt:", "Steps: ")):
            break
        prompt_lines.append(line)
    pairs = dict(re.findall(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)', settings_line))
    settings = {key: pairs[key].strip() for key in A1111_KEYS if key in pairs}
    tool = (
        "Forge" if settings.get("Version", "").startswith("f") else "AUTOMATIC1111 (Stable Diffusion web UI)"
    )
    return [_finding(tool, keyword, settings, "\n".join(prompt_lines))]


def _json(text: str, keyword: str) -> Any:
    if len(text) > MAX_JSON_BYTES:
        raise ValueError(f"{keyword} of {len(text)} characters, over the limit")
    return json.loads(text)


def _comfy_nodes(graph: Any) -> list[dict[str, Any]]:
    """(class_type, inputs) of an API graph ``{"id": {"class_type", "inputs"}}``."""
    if not isinstance(graph, dict):
        return []
    return [
        node for node in graph.values() if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
    ]


def _comfy_prompt(text: str, keyword: str) -> list[Finding]:
    try:
        nodes = _comfy_nodes(_json(text, keyword))
    except (ValueError, RecursionError) as error:
        return [unreadable("text_chunks", f"ComfyUI prompt: {error}")]
    settings: dict[str, Any] = {"nodes": len(nodes)}
    prompt = None
    for node in nodes:
        kind, inputs = str(node.get("class_type")), node["inputs"]
        if "ckpt_name" in inputs or "unet_name" in inputs:
            settings.setdefault("model", inputs.get("ckpt_name") or inputs.get("unet_name"))
        if kind.startswith("KSampler"):
            for key in ("seed", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"):
                if key in inputs and not isinstance(inputs[key], list):
                    settings.setdefault(key, inputs[key])
        if kind.startswith("CLIPTextEncode") and prompt is None and isinstance(inputs.get("text"), str):
            prompt = inputs["text"]
    return [_finding("ComfyUI", keyword, settings, prompt)]


def _comfy_workflow(text: str, keyword: str) -> list[Finding]:
    try:
        workflow = _json(text, keyword)
    except (ValueError, RecursionError) as error:
        return [unreadable("text_chunks", f"ComfyUI workflow: {error}")]
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    nodes = [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []
    kinds = sorted({str(node.get("type")) for node in nodes if node.get("type")})
    settings = {"nodes": len(nodes), "node types": ", ".join(kinds[:8]) + (" ..." if len(kinds) > 8 else "")}
    return [_finding("ComfyUI", keyword, settings, None)]


def _invoke(text: str, keyword: str) -> list[Finding]:
    try:
        data = _json(text, keyword)
    except (ValueError, RecursionError) as error:
        return [unreadable("text_chunks", f"InvokeAI {keyword}: {error}")]
    if not isinstance(data, dict):
        return [unreadable("text_chunks", f"InvokeAI {keyword}: not a JSON object")]
    image = data.get("image") if isinstance(data.get("image"), dict) else {}
    model = data.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name")
    settings = {
        "model": model or data.get("model_weights"),
        "seed": data.get("seed", image.get("seed")),
        "steps": data.get("steps", image.get("steps")),
        "cfg_scale": data.get("cfg_scale", image.get("cfg_scale")),
        "scheduler": data.get("scheduler", image.get("sampler")),
        "size": f"{data['width']}x{data['height']}" if "width" in data and "height" in data else None,
        "app_version": data.get("app_version"),
    }
    prompt = data.get("positive_prompt", image.get("prompt"))
    if isinstance(prompt, list):  # sd-metadata: [{"prompt": ..., "weight": ...}]
        prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
    return [_finding("InvokeAI", keyword, settings, prompt if isinstance(prompt, str) else None)]


def _software(text: str, keyword: str, values: dict[str, bytes]) -> list[Finding]:
    from aiclassify.evidence.exif import software_kind

    if text.strip().lower() == "novelai":
        settings: dict[str, Any] = {"source": decode_text(values.get("Source", b""))}
        prompt = decode_text(values.get("Description", b"")) or None
        if "Comment" in values:
            try:
                comment = _json(decode_text(values["Comment"]), "Comment")
            except (ValueError, RecursionError):
                comment = None
            if isinstance(comment, dict):
                for key in ("steps", "scale", "seed", "sampler", "width", "height", "strength"):
                    settings[key] = comment.get(key)
                prompt = prompt or (comment.get("prompt") if isinstance(comment.get("prompt"), str) else None)
        return [_finding("NovelAI", "Software/Comment", settings, prompt)]
    if software_kind(text) == "generator":
        return [_finding(safe_text(text, 60), "Software", {}, None)]
    return []


def _user_comment(raw: bytes) -> str:
    """EXIF UserComment text: an 8-byte character code, then the text (UTF-16 for ``UNICODE``)."""
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        # UTF-16 of either byte order (A1111 writes big-endian); pick the one that looks like ASCII
        big = body[0::2].count(0) >= body[1::2].count(0)
        return body.decode("utf-16-be" if big else "utf-16-le", "replace")
    return decode_text(body if code.startswith((b"ASCII", b"\x00" * 8, b"JIS")) else raw)
