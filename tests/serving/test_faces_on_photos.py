"""The face path end to end on real photos with MTCNN (slow: reads ../shared, skipped when absent):
the API's model=auto, the library's FacePath and the predict command give the same faces and scores."""

from __future__ import annotations

import io
import json

import pytest
from builders import GROUP_PLACES, assert_matches_openapi

from aiclassify.faces import FaceDetector, FaceFinder
from aiclassify.faces.measure import box_iou
from aiclassify.predict import FacePath, Predictor, cli
from aiclassify.serving.app import create_app
from aiclassify.serving.state import serving_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(api_models):
    """The two tiny runs as ``faces`` and ``general``, with the real detector at default settings."""
    application = create_app({"models": api_models, "background_loading": False})
    yield application
    serving_state(application).registry.close()


def square(place):
    x, y, side = place
    return (x, y, side, side)


def test_auto_on_a_group_photo_scores_three_faces_where_they_are(app, group_photo, api_models):
    files = {"file": (io.BytesIO(group_photo), "group.jpg")}
    response = app.test_client().post("/predict?model=auto", data=files, content_type="multipart/form-data")
    body = assert_matches_openapi(response, "/predict")
    [prediction] = body["predictions"]
    assert body["model"]["name"] == "general" and body["face_model"]["name"] == "faces"
    faces = prediction["faces"]
    assert len(faces) == 3
    for face, place in zip(faces, GROUP_PLACES, strict=True):  # left to right, as pasted
        assert box_iou(face["box"], square(place)) > 0.2  # the face inside its pasted photo
        assert face["detector_confidence"] >= 0.9

    # The same faces and scores as the library's face path on the same bytes.
    path = FacePath(FaceFinder(FaceDetector()), Predictor.load(api_models["faces"]))
    [(search, verdicts)] = path.score([group_photo])
    assert [list(v.crop.face.box) for v in verdicts] == [face["box"] for face in faces]
    assert [v.verdict.probability_ai for v in verdicts] == pytest.approx(
        [face["probability_ai"] for face in faces], abs=1e-6
    )
    general = Predictor.load(api_models["general"]).predict([group_photo])[0]
    assert prediction["probability_ai"] == pytest.approx(general.probability_ai, abs=1e-6)


def test_predict_cli_lists_the_faces_of_a_group_photo(api_models, group_photo, tmp_path, capsys):
    photo = tmp_path / "group.jpg"
    photo.write_bytes(group_photo)
    arguments = ["--run", api_models["general"], "--face-run", api_models["faces"], str(photo)]
    assert cli.main([*arguments, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["faces"]) == 3 and result["verdict"] in ("ai-generated", "real", "inconclusive")
    assert cli.main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    face_lines = [line for line in lines if line.startswith("  face ")]
    assert [line.split()[1] for line in face_lines] == ["1", "2", "3"]
    assert f"{result['faces'][0]['box']}" in face_lines[0]
