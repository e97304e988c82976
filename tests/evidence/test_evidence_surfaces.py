"""Where the evidence shows: the Predictor (beside the verdict, never in the score), the API's
/predict (declared in the OpenAPI document), the predict command's lines, and the page's words."""

from __future__ import annotations

import io

import numpy as np
import pytest
from builders import assert_matches_openapi
from evidence_files import A1111_PARAMETERS, camera_jpeg, pixels, png_with_text, save
from PIL import Image

from aiclassify.page import results
from aiclassify.predict import FilePrediction, Predictor
from aiclassify.predict.cli import format_result
from aiclassify.serving.app import create_app
from aiclassify.serving.state import serving_state


def pixel_score(images: list[bytes]) -> list[float]:
    """A score of the decoded pixels only (as every real model's is)."""
    scores = []
    for data in images:
        with Image.open(io.BytesIO(data)) as image:
            scores.append(float(np.asarray(image.convert("RGB"), dtype=np.float64).mean() / 255))
    return scores


def test_metadata_does_not_change_a_score():
    plain = save(pixels(), "PNG")
    generated = png_with_text(parameters=A1111_PARAMETERS)
    assert plain != generated
    predictor = Predictor(pixel_score, {"threshold": 0.5, "image_size": 32}, {"temperature": 1.5})
    without, with_chunk = predictor.predict([plain, generated])
    assert with_chunk.probability_ai == without.probability_ai
    assert with_chunk.probability_ai_uncalibrated == without.probability_ai_uncalibrated
    assert with_chunk.label == without.label and with_chunk.verdict == without.verdict
    np.testing.assert_array_equal(predictor.probabilities([plain]), predictor.probabilities([generated]))
    assert without.evidence.declared == "none"
    assert with_chunk.evidence.declared == "ai-generated (metadata, unsigned)"
    assert predictor.evidence(generated) == with_chunk.evidence


def test_predict_files_carries_evidence(tmp_path):
    path = tmp_path / "a1111.png"
    path.write_bytes(png_with_text(parameters=A1111_PARAMETERS))
    predictor = Predictor(pixel_score, {"threshold": 0.5})
    (result,) = predictor.predict_files([path])
    assert result.evidence["declared"] == "ai-generated (metadata, unsigned)"
    assert {"source", "finding", "strength", "detail"} == set(result.evidence["findings"][0])


def test_cli_prints_one_evidence_line_per_finding(tmp_path):
    path = tmp_path / "camera.jpg"
    path.write_bytes(camera_jpeg())
    (result,) = Predictor(pixel_score, {"threshold": 0.5}).predict_files([path])
    lines = format_result(result)
    evidence = [line for line in lines if line.startswith("  evidence: ")]
    assert evidence[0] == "  evidence: declared: none (metadata only; not part of the score)"
    assert len(evidence) == 1 + len(result.evidence["findings"])
    assert any(
        line.startswith("  evidence: exif: camera_exif (weak): camera EXIF: Canon") for line in evidence
    )
    assert any("jpeg: jpeg_quality (info)" in line for line in evidence)
    error = FilePrediction("x.png", None, None, "no such file")
    assert format_result(error) == ["x.png: error: no such file"]


@pytest.fixture
def client():
    predictor = Predictor(
        pixel_score, {"name": "fake", "model": "fake", "threshold": 0.5}, calibration_source=None
    )
    app = create_app({"models": {}, "background_loading": False}, predictors={"fake": predictor})
    yield app.test_client()
    serving_state(app).registry.close()


def test_api_prediction_has_evidence_matching_the_openapi_document(client):
    generated = png_with_text(parameters=A1111_PARAMETERS)
    response = client.post(
        "/predict",
        data={"file": [(io.BytesIO(generated), "gen.png"), (io.BytesIO(save(pixels(), "PNG")), "plain.png")]},
        content_type="multipart/form-data",
    )
    body = assert_matches_openapi(response, "/predict")
    first, second = body["predictions"]
    assert first["evidence"]["declared"] == "ai-generated (metadata, unsigned)"
    finding = next(f for f in first["evidence"]["findings"] if f["finding"] == "generator_parameters")
    assert finding["source"] == "text_chunks" and finding["strength"] == "weak"
    assert second["evidence"]["declared"] == "none"
    assert first["probability_ai"] == second["probability_ai"]  # same pixels, same score


def test_openapi_document_declares_evidence(client):
    document = client.get("/openapi.json").get_json()
    text = str(document)
    assert "ai-generated (signed, valid)" in text and "text_chunks" in text and "strong" in text


def test_page_evidence_section_in_plain_words():
    evidence = {
        "declared": "ai-generated (metadata, unsigned)",
        "findings": [
            {
                "source": "text_chunks",
                "finding": "generator_parameters",
                "strength": "weak",
                "detail": "A1111",
            },
            {"source": "jpeg", "finding": "jpeg_quality", "strength": "info", "detail": "quality about 90"},
        ],
    }
    row = results.row_from_prediction("a.png", {"verdict": "real", "label": "real", "evidence": evidence})
    lines = results.evidence_lines(row.evidence)
    assert lines[0].startswith("Unsigned metadata declares this image AI-generated")
    assert "a claim, not proof" in lines[0]
    assert lines[1].startswith("Generator settings: A1111.") and "Weak:" in lines[1]
    assert lines[2].startswith("JPEG: quality about 90.") and "Context only" in lines[2]
    assert "does not make it real" in results.evidence_lines({"declared": "none", "findings": []})[0]
    assert results.evidence_lines(None) == ["No metadata evidence was returned for this image."]
    assert results.markdown_escape("![x](http://e)") == "\\!\\[x\\]\\(http\\://e\\)"


@pytest.fixture
def four_files(tmp_path, monkeypatch) -> dict[str, tuple[bytes, str]]:
    """A signed AI image (trusted CA), the same tampered, an A1111 PNG and a camera photo, with the
    ``declared`` each must give."""
    pytest.importorskip("c2pa")
    from evidence_files import c2pa_signed, make_credentials, tamper_pixels

    from aiclassify.evidence.c2pa import TRUST_ANCHORS_ENV

    credentials = make_credentials()
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(credentials.ca_pem)
    monkeypatch.setenv(TRUST_ANCHORS_ENV, str(anchors))
    signed = c2pa_signed(credentials, "JPEG")
    return {
        "signed.jpg": (signed, "ai-generated (signed, valid)"),
        "tampered.jpg": (tamper_pixels(signed, "JPEG"), "ai-generated (signed, invalid)"),
        "a1111.png": (png_with_text(parameters=A1111_PARAMETERS), "ai-generated (metadata, unsigned)"),
        "photo.jpg": (camera_jpeg(), "none"),
    }


def test_four_files_give_four_evidence_lists_through_the_api(client, four_files):
    response = client.post(
        "/predict",
        data={"file": [(io.BytesIO(data), name) for name, (data, _) in four_files.items()]},
        content_type="multipart/form-data",
    )
    body = assert_matches_openapi(response, "/predict")
    declared = [prediction["evidence"]["declared"] for prediction in body["predictions"]]
    assert declared == [expected for _, expected in four_files.values()]
    findings = [
        frozenset((f["finding"], f["strength"], f["detail"]) for f in p["evidence"]["findings"])
        for p in body["predictions"]
    ]
    assert len(set(findings)) == 4, findings
    signed, tampered = (
        next(f for f in p["evidence"]["findings"] if f["finding"] == "c2pa_manifest")
        for p in body["predictions"][:2]
    )
    assert signed["strength"] == "strong" and tampered["strength"] != "strong"


def test_four_files_give_four_evidence_lists_through_the_cli(four_files, tmp_path, capsys):
    paths = []
    for name, (data, _) in four_files.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    results = Predictor(pixel_score, {"threshold": 0.5}).predict_files(paths)
    assert [r.evidence["declared"] for r in results] == [expected for _, expected in four_files.values()]
    for result, (_, expected) in zip(results, four_files.values(), strict=True):
        assert f"  evidence: declared: {expected}" in "\n".join(format_result(result))
