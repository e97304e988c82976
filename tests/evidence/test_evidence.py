"""aiclassify.evidence on real files built here: C2PA (signed in the test), XMP, EXIF, generator
text chunks, files without metadata, and truncated, oversized and random inputs."""

from __future__ import annotations

import random
import time
import zlib

import pytest
from evidence_files import (
    A1111_PARAMETERS,
    CAPTURE_SOURCE,
    COMFY_PROMPT,
    COMFY_WORKFLOW,
    c2pa_signed,
    camera_jpeg,
    jpeg_with_software,
    jpeg_with_user_comment,
    jpeg_with_xmp,
    make_credentials,
    pixels,
    png_chunk,
    png_with_raw_chunks,
    png_with_text,
    save,
    tamper_pixels,
    xmp_packet,
)
from PIL import Image

from aiclassify.evidence import DECLARED, SOURCES, STRENGTHS, read_evidence
from aiclassify.evidence import c2pa as c2pa_module
from aiclassify.evidence.containers import MAX_BLOCK_BYTES, MAX_SEGMENTS
from aiclassify.evidence.findings import MAX_TEXT, safe_text


def by_code(evidence, code: str, source: str | None = None):
    found = [f for f in evidence.findings if f.finding == code and (source is None or f.source == source)]
    assert found, f"no {code} finding in {[(f.source, f.finding) for f in evidence.findings]}"
    return found[0]


def codes(evidence) -> set[tuple[str, str]]:
    return {(f.source, f.finding) for f in evidence.findings}


def assert_well_formed(evidence) -> None:
    assert evidence.declared in DECLARED
    for finding in evidence.findings:
        assert finding.source in SOURCES and finding.strength in STRENGTHS
        assert isinstance(finding.detail, str) and finding.detail
        assert set(finding.to_dict()) == {"source", "finding", "strength", "detail"}


@pytest.fixture(scope="module")
def credentials():
    return make_credentials()


@pytest.fixture
def trusted(credentials, tmp_path, monkeypatch):
    """The test CA configured as the offline trust list."""
    path = tmp_path / "anchors.pem"
    path.write_bytes(credentials.ca_pem)
    monkeypatch.setenv(c2pa_module.TRUST_ANCHORS_ENV, str(path))
    return path


@pytest.fixture(autouse=True)
def no_trust_list(monkeypatch):
    monkeypatch.delenv(c2pa_module.TRUST_ANCHORS_ENV, raising=False)


# --- C2PA --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_c2pa_signed_ai_declaration_valid_with_the_trust_list(credentials, trusted, fmt):
    evidence = read_evidence(c2pa_signed(credentials, fmt))
    assert_well_formed(evidence)
    manifest = by_code(evidence, "c2pa_manifest", "c2pa")
    assert manifest.strength == "strong"
    assert "Content Credentials valid (Trusted)" in manifest.detail
    assert "aiclassify-test-generator 1.0" in manifest.detail
    assert "aiclassify test signer" in manifest.detail
    assert "declares generative AI" in manifest.detail and "trainedAlgorithmicMedia" in manifest.detail
    assert evidence.declared == "ai-generated (signed, valid)"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_c2pa_signed_without_trust_list_is_untrusted(credentials, fmt):
    evidence = read_evidence(c2pa_signed(credentials, fmt))
    manifest = by_code(evidence, "c2pa_manifest")
    assert manifest.strength == "weak"
    assert "Content Credentials untrusted (Valid)" in manifest.detail
    assert "signingCredential.untrusted" in manifest.detail
    assert evidence.declared == "ai-generated (signed, untrusted)"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_c2pa_bytes_changed_after_signing_is_invalid(credentials, trusted, fmt):
    evidence = read_evidence(tamper_pixels(c2pa_signed(credentials, fmt), fmt))
    manifest = by_code(evidence, "c2pa_manifest")
    assert manifest.strength == "weak"
    assert "Content Credentials invalid (Invalid)" in manifest.detail
    assert "failures: " in manifest.detail and "mismatch" in manifest.detail.lower()
    assert evidence.declared == "ai-generated (signed, invalid)"


def test_c2pa_capture_declaration_declares_nothing(credentials, trusted):
    evidence = read_evidence(c2pa_signed(credentials, "JPEG", CAPTURE_SOURCE))
    manifest = by_code(evidence, "c2pa_manifest")
    assert manifest.strength == "strong" and "does not declare generative AI" in manifest.detail
    assert evidence.declared == "none"


def test_remote_manifest_is_not_fetched(credentials):
    url = "http://192.0.2.1/manifest.c2pa"  # TEST-NET-1: nothing answers there
    started = time.monotonic()
    evidence = read_evidence(c2pa_signed(credentials, remote_url=url))
    assert time.monotonic() - started < 3
    finding = by_code(evidence, "c2pa_remote", "c2pa")
    assert finding.strength == "info" and url in finding.detail and "not fetched" in finding.detail
    assert evidence.declared == "none"


def test_unreadable_trust_list_is_reported_and_trusts_nothing(credentials, tmp_path, monkeypatch):
    monkeypatch.setenv(c2pa_module.TRUST_ANCHORS_ENV, str(tmp_path / "missing.pem"))
    evidence = read_evidence(c2pa_signed(credentials))
    manifest = by_code(evidence, "c2pa_manifest")
    assert "untrusted" in manifest.detail and c2pa_module.TRUST_ANCHORS_ENV in manifest.detail
    assert evidence.declared == "ai-generated (signed, untrusted)"


def test_reader_settings_stay_offline(credentials, trusted):
    config, problem = c2pa_module.settings()
    assert problem is None
    assert config["verify"]["remote_manifest_fetch"] is False
    assert config["verify"]["ocsp_fetch"] is False
    assert config["core"]["allowed_network_hosts"] == []
    assert config["trust"]["trust_anchors"] == credentials.ca_pem.decode()


def test_without_c2pa_python_it_says_c2pa_was_not_checked(monkeypatch):
    monkeypatch.setattr(c2pa_module, "available", lambda: False)
    evidence = read_evidence(png_with_text(parameters=A1111_PARAMETERS))
    finding = by_code(evidence, "c2pa_not_checked", "c2pa")
    assert finding.strength == "info" and "not checked" in finding.detail
    assert evidence.declared == "ai-generated (metadata, unsigned)"


def test_a_hanging_reader_is_abandoned(monkeypatch):
    monkeypatch.setattr(c2pa_module, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(c2pa_module, "_read_store", lambda *args: time.sleep(2))
    started = time.monotonic()
    finding = by_code(read_evidence(save(pixels(), "PNG")), "unreadable", "c2pa")
    assert time.monotonic() - started < 1.5
    assert "abandoned" in finding.detail


def test_corrupt_manifest_is_unreadable_not_an_exception(credentials):
    signed = bytearray(c2pa_signed(credentials))
    start = signed.index(b"jumb")  # inside the JUMBF box of the manifest store
    signed[start + 40 : start + 400] = bytes(360)
    evidence = read_evidence(bytes(signed))
    assert_well_formed(evidence)
    assert "manifest store" in by_code(evidence, "unreadable", "c2pa").detail
    assert evidence.declared == "none"


def test_oversized_manifest_box_is_unreadable(credentials):
    signed = bytearray(c2pa_signed(credentials, "PNG"))
    box = signed.index(b"caBX")
    signed[box - 4 : box] = (2**31).to_bytes(4, "big")  # the C2PA chunk claims 2 GiB
    evidence = read_evidence(bytes(signed))
    assert_well_formed(evidence)
    assert "manifest store" in by_code(evidence, "unreadable", "c2pa").detail
    assert "caBX truncated" in by_code(evidence, "unreadable", "text_chunks").detail
    assert evidence.declared == "none"


# --- XMP -------------------------------------------------------------------------------------------


def test_jpeg_xmp_digital_source_type():
    extra = (
        "<Iptc4xmpExt:AISystemUsed>ImageGen 3</Iptc4xmpExt:AISystemUsed>"
        "<xmp:CreatorTool>Adobe Photoshop 25.0</xmp:CreatorTool>"
    )
    evidence = read_evidence(jpeg_with_xmp(xmp_packet(extra=extra)))
    assert_well_formed(evidence)
    source = by_code(evidence, "digital_source_type", "xmp")
    assert source.strength == "weak" and source.detail.startswith("trainedAlgorithmicMedia")
    assert "unsigned" in source.detail
    assert "ImageGen 3" in by_code(evidence, "ai_system_used", "xmp").detail
    assert by_code(evidence, "creator_tool", "xmp").strength == "info"
    assert by_code(evidence, "c2pa_absent", "c2pa").strength == "info"
    assert evidence.declared == "ai-generated (metadata, unsigned)"


def test_xmp_capture_source_type_declares_nothing():
    evidence = read_evidence(jpeg_with_xmp(xmp_packet(CAPTURE_SOURCE)))
    assert "non-AI origin" in by_code(evidence, "digital_source_type").detail
    assert evidence.declared == "none"


def test_png_xmp_in_itxt():
    packet = xmp_packet().decode()
    evidence = read_evidence(png_with_text(**{"XML:com.adobe.xmp": packet}))
    assert by_code(evidence, "digital_source_type", "xmp")
    assert evidence.declared == "ai-generated (metadata, unsigned)"


def test_xmp_with_entities_is_not_parsed():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        + xmp_packet()
    )
    evidence = read_evidence(jpeg_with_xmp(bomb))
    assert "DTD" in by_code(evidence, "unreadable", "xmp").detail
    assert evidence.declared == "none"


def test_truncated_and_oversized_xmp_are_unreadable():
    truncated = read_evidence(jpeg_with_xmp(xmp_packet()[:150]))
    assert "unreadable" in {f.finding for f in truncated.findings if f.source == "xmp"}
    broken = read_evidence(jpeg_with_xmp(xmp_packet().replace(b"</rdf:Description>", b"</rdf:Descr>")))
    assert "not well-formed" in by_code(broken, "unreadable", "xmp").detail
    big = xmp_packet(extra="<xmp:Label>" + "x" * (MAX_BLOCK_BYTES + 10) + "</xmp:Label>")
    huge = read_evidence(
        png_with_raw_chunks(png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + big))
    )
    assert "limit" in by_code(huge, "unreadable", "text_chunks").detail
    assert huge.declared == "none"


# --- EXIF ------------------------------------------------------------------------------------------


def test_camera_exif_is_weak_evidence():
    evidence = read_evidence(camera_jpeg())
    assert_well_formed(evidence)
    camera = by_code(evidence, "camera_exif", "exif")
    assert camera.strength == "weak"
    assert "Canon Canon EOS R5" in camera.detail and "2024:05:17 14:03:22" in camera.detail
    assert "weak evidence" in camera.detail
    assert by_code(evidence, "software", "exif").strength == "info"
    quality = by_code(evidence, "jpeg_quality", "jpeg")
    assert quality.strength == "info" and "quality about 92" in quality.detail
    assert evidence.declared == "none"


def test_no_metadata_at_all():
    for data in (save(pixels(), "PNG"), save(pixels(), "JPEG", quality=75), save(pixels(), "WEBP")):
        evidence = read_evidence(data)
        assert_well_formed(evidence)
        absent = by_code(evidence, "no_camera_exif", "exif")
        assert absent.strength == "info" and "no evidence either way" in absent.detail
        assert by_code(evidence, "c2pa_absent", "c2pa").strength == "info"
        assert "says nothing" in by_code(evidence, "c2pa_absent").detail
        assert evidence.declared == "none"
        assert not [f for f in evidence.findings if f.strength != "info"]


@pytest.mark.parametrize(
    ("software", "code", "declared"),
    [
        ("Adobe Firefly", "generator_software", "ai-generated (metadata, unsigned)"),
        ("Midjourney v6", "generator_software", "ai-generated (metadata, unsigned)"),
        ("Adobe Photoshop 25.0 (Windows)", "editor_software", "none"),
        ("GIMP 2.10.36", "editor_software", "none"),
    ],
)
def test_software_lists(software, code, declared):
    evidence = read_evidence(jpeg_with_software(software))
    assert software in by_code(evidence, code, "exif").detail
    assert evidence.declared == declared


def test_corrupt_exif_never_raises():
    data = png_with_raw_chunks(png_chunk(b"eXIf", b"MM\x00\x2a\x00\x00\x00\x08\xff\xff" + bytes(5)))
    with pytest.warns(UserWarning):  # Pillow warns about the corrupt block, and reads nothing from it
        evidence = read_evidence(data)
    assert_well_formed(evidence)
    assert ("exif", "no_camera_exif") in codes(evidence)
    assert read_evidence(png_with_raw_chunks(png_chunk(b"eXIf", b"XX" + bytes(20)))).declared == "none"


# --- generator text chunks ------------------------------------------------------------------------------


def test_png_a1111_parameters():
    evidence = read_evidence(png_with_text(parameters=A1111_PARAMETERS))
    assert_well_formed(evidence)
    finding = by_code(evidence, "generator_parameters", "text_chunks")
    assert finding.strength == "weak"
    assert finding.detail.startswith("AUTOMATIC1111 (Stable Diffusion web UI) settings in parameters")
    for setting in ("Steps: 20", "Sampler: DPM++ 2M Karras", "CFG scale: 7", "Seed: 1234567",
                    "Size: 512x512", "Model: v1-5-pruned-emaonly", "Version: v1.6.0"):  # fmt: skip
        assert setting in finding.detail
    assert "prompt: a photo of an astronaut riding a horse, highly detailed" in finding.detail
    assert "blurry" not in finding.detail  # the negative prompt is not the prompt
    assert evidence.declared == "ai-generated (metadata, unsigned)"


def test_forge_is_told_from_a1111():
    text = A1111_PARAMETERS.replace("Version: v1.6.0", "Version: f0.0.17v1.8.0rc-latest-276")
    assert by_code(read_evidence(png_with_text(parameters=text)), "generator_parameters").detail.startswith(
        "Forge"
    )


def test_png_comfyui_prompt_and_workflow():
    evidence = read_evidence(png_with_text(prompt=COMFY_PROMPT, workflow=COMFY_WORKFLOW))
    assert_well_formed(evidence)
    details = [f.detail for f in evidence.findings if f.finding == "generator_parameters"]
    prompt = next(d for d in details if "settings in prompt" in d)
    workflow = next(d for d in details if "settings in workflow" in d)
    assert prompt.startswith("ComfyUI")
    for setting in ("nodes: 3", "model: sd_xl_base_1.0.safetensors", "seed: 42", "steps: 25", "cfg: 8.0",
                    "sampler_name: euler", "prompt: a castle on a hill at dusk"):  # fmt: skip
        assert setting in prompt
    assert workflow.startswith("ComfyUI") and "nodes: 4" in workflow and "KSampler" in workflow
    assert evidence.declared == "ai-generated (metadata, unsigned)"


def test_invokeai_and_novelai():
    invoke = read_evidence(
        png_with_text(
            invokeai_metadata='{"positive_prompt": "a red fox", "seed": 7, "steps": 30, '
            '"model": {"name": "juggernaut"}, "width": 768, "height": 512}'
        )  # fmt: skip
    )
    detail = by_code(invoke, "generator_parameters").detail
    assert detail.startswith("InvokeAI") and "model: juggernaut" in detail and "size: 768x512" in detail
    assert "prompt: a red fox" in detail
    novel = read_evidence(
        png_with_text(
            Software="NovelAI",
            Source="NovelAI Diffusion V3",
            Description="1girl, scenery",
            Comment='{"steps": 28, "scale": 5.0, "seed": 99, "sampler": "k_euler"}',
        )  # fmt: skip
    )
    detail = by_code(novel, "generator_parameters").detail
    assert detail.startswith("NovelAI") and "steps: 28" in detail and "prompt: 1girl, scenery" in detail
    assert novel.declared == invoke.declared == "ai-generated (metadata, unsigned)"


def test_jpeg_and_webp_user_comment_parameters():
    evidence = read_evidence(jpeg_with_user_comment(A1111_PARAMETERS))
    detail = by_code(evidence, "generator_parameters").detail
    assert "settings in EXIF UserComment" in detail and "Seed: 1234567" in detail
    assert evidence.declared == "ai-generated (metadata, unsigned)"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111_PARAMETERS.encode("utf-16-le")
    webp = read_evidence(save(pixels(), "WEBP", exif=exif.tobytes(), xmp=xmp_packet()))
    assert "settings in EXIF UserComment" in by_code(webp, "generator_parameters").detail
    assert by_code(webp, "digital_source_type", "xmp").detail.startswith("trainedAlgorithmicMedia")
    comment = read_evidence(save(pixels(), "JPEG", comment=A1111_PARAMETERS.encode()))
    assert "settings in JPEG comment" in by_code(comment, "generator_parameters").detail


def test_prompt_truncated_and_control_characters_escaped():
    prompt = "\x1b[31mred\u202e" + "x" * 500 + "\nNegative prompt: n"
    text = prompt + "\nSteps: 20, Seed: 1"
    detail = by_code(read_evidence(png_with_text(parameters=text)), "generator_parameters").detail
    assert "\x1b" not in detail and "\u202e" not in detail and "\\x1b" in detail and "\\u202e" in detail
    assert "characters, truncated" in detail
    assert len(safe_text("y" * 1000)) < MAX_TEXT + 50


def test_malformed_generator_json_is_unreadable():
    evidence = read_evidence(png_with_text(prompt='{"3": {"class_type": ', invokeai_metadata="[" * 100_000))
    assert_well_formed(evidence)
    reasons = [f.detail for f in evidence.findings if f.finding == "unreadable"]
    assert any("ComfyUI prompt" in r for r in reasons) and any("InvokeAI" in r for r in reasons)


def test_oversized_and_hostile_chunks():
    bomb = zlib.compress(b"a" * (MAX_BLOCK_BYTES * 4))  # zTXt that inflates past the limit
    big = b"parameters\x00" + b"x" * (MAX_BLOCK_BYTES + 1)
    data = png_with_raw_chunks(png_chunk(b"zTXt", b"parameters\x00\x00" + bomb), png_chunk(b"tEXt", big))
    evidence = read_evidence(data)
    assert_well_formed(evidence)
    reasons = " ".join(f.detail for f in evidence.findings if f.finding == "unreadable")
    assert "inflates past" in reasons and "limit" in reasons
    many = png_with_raw_chunks(*[png_chunk(b"tEXt", b"k\x00v")] * (MAX_SEGMENTS + 5))
    assert "more than" in " ".join(
        f.detail for f in read_evidence(many).findings if f.finding == "unreadable"
    )
    broken = png_with_raw_chunks(png_chunk(b"tEXt", b"no separator"), png_chunk(b"iTXt", b"k\x00"))
    assert len([f for f in read_evidence(broken).findings if f.finding == "unreadable"]) >= 2


def test_truncated_files_never_raise(credentials):
    files = [
        png_with_text(parameters=A1111_PARAMETERS),
        jpeg_with_xmp(xmp_packet()),
        camera_jpeg(),
        c2pa_signed(credentials, "JPEG"),
        c2pa_signed(credentials, "PNG"),
    ]
    for data in files:
        for cut in (2, 10, 40, 100, len(data) // 3, len(data) // 2, len(data) - 3):
            assert_well_formed(read_evidence(data[:cut]))
    declared = read_evidence(files[0][:60]).declared  # cut inside the text chunk
    assert declared == "none"
    assert "truncated" in " ".join(f.detail for f in read_evidence(files[0][:60]).findings)


def test_random_bytes_fuzz(credentials):
    rng = random.Random(1234)
    seeds = [png_with_text(parameters=A1111_PARAMETERS, prompt=COMFY_PROMPT), jpeg_with_xmp(xmp_packet()),
             camera_jpeg(), c2pa_signed(credentials, "JPEG"), save(pixels(), "WEBP")]  # fmt: skip
    started = time.monotonic()
    for index in range(150):
        if index % 3 == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 600)))
            data = rng.choice([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"RIFF\x00\x00\x00\x00WEBP"]) + data
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 20)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        assert_well_formed(read_evidence(data))
    assert time.monotonic() - started < 60


def test_evidence_never_imports_tensorflow(tmp_path):
    from conftest import assert_runs_without_tensorflow

    path = tmp_path / "a.png"
    path.write_bytes(png_with_text(parameters=A1111_PARAMETERS))
    code = (
        "import sys, pathlib\nfrom aiclassify.evidence import read_evidence\n"
        "evidence = read_evidence(pathlib.Path(sys.argv[1]).read_bytes())\n"
        "assert evidence.declared == 'ai-generated (metadata, unsigned)', evidence"
    )
    assert_runs_without_tensorflow(code, tmp_path, str(path))


def test_a_parser_bug_becomes_an_unreadable_finding(monkeypatch):
    import aiclassify.evidence as evidence_module

    def broken(_packets):
        raise RuntimeError("boom")

    monkeypatch.setattr(evidence_module, "xmp_findings", broken)
    evidence = read_evidence(png_with_text(parameters=A1111_PARAMETERS))
    assert "RuntimeError: boom" in by_code(evidence, "unreadable", "xmp").detail
    assert evidence.declared == "ai-generated (metadata, unsigned)"  # the other sources still count


def test_formats_c2pa_cannot_read_say_not_checked():
    evidence = read_evidence(save(pixels(), "BMP"))
    assert "does not read this file format" in by_code(evidence, "c2pa_not_checked", "c2pa").detail
    assert evidence.declared == "none"
    assert by_code(read_evidence(save(pixels(), "GIF")), "c2pa_absent", "c2pa")
