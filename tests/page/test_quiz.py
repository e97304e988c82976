"""The human-vs-model quiz: its logic (aiclassify.page.quiz) and its page (app/pages/quiz.py) in AppTest."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("requests")
streamlit_testing = pytest.importorskip("streamlit.testing.v1")

from conftest import APP, APP_TIMEOUT_S, assert_runs_without_tensorflow, serve_api, silent_server  # noqa: E402

from aiclassify.page import quiz  # noqa: E402
from aiclassify.page.results import ResultRow  # noqa: E402

QUIZ_PAGE = APP.parent / "pages" / "quiz.py"


def write_images(folder: Path, count: int, colour: tuple[int, int, int]) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.new("RGB", (32, 32), colour).save(folder / f"{folder.name}_{index:03d}.png")


@pytest.fixture()
def labelled_folder(tmp_path) -> Path:
    """A dataset with train and test splits: the test split has 10 real and 10 fake images."""
    for split, count in (("train", 3), ("test", 10)):
        write_images(tmp_path / "set" / split / "REAL", count, (0, 128, 0))
        write_images(tmp_path / "set" / split / "FAKE", count, (128, 0, 0))
    return tmp_path / "set"


# --- logic ------------------------------------------------------------------------------------------


def test_quiz_logic_does_not_import_tensorflow(tmp_path):
    assert_runs_without_tensorflow("import aiclassify.page.quiz", tmp_path)


def test_a_seed_always_draws_the_same_quiz_and_another_seed_another(labelled_folder):
    first = quiz.draw_questions(labelled_folder, 8, seed=3)
    assert quiz.draw_questions(labelled_folder, 8, seed=3) == first
    assert quiz.draw_questions(labelled_folder, 8, seed=4) != first


def test_a_quiz_draws_half_of_each_class_from_the_test_split(labelled_folder):
    questions = quiz.draw_questions(labelled_folder, 9, seed=0)
    assert len(questions) == len({q.path for q in questions}) == 9
    truths = [q.truth for q in questions]
    assert sorted([truths.count(quiz.REAL), truths.count(quiz.AI_GENERATED)]) == [4, 5]
    assert all(Path(q.path).parent.parent.name == "test" for q in questions)
    assert all((q.truth == quiz.REAL) == q.file.startswith("REAL") for q in questions)


def test_the_order_is_shuffled_not_grouped_by_class(labelled_folder):
    orders = {tuple(q.truth for q in quiz.draw_questions(labelled_folder, 10, seed)) for seed in range(5)}
    assert len(orders) > 1
    assert (quiz.REAL,) * 5 + (quiz.AI_GENERATED,) * 5 not in orders


def test_a_folder_of_class_folders_without_splits_is_a_quiz(tmp_path):
    write_images(tmp_path / "real", 2, (0, 0, 0))
    write_images(tmp_path / "fake", 2, (255, 255, 255))
    assert len(quiz.draw_questions(tmp_path, 4, seed=0)) == 4


@pytest.mark.parametrize(("count", "match"), [(0, "Received: count=0"), (101, "Received: count=101")])
def test_the_number_of_questions_is_bounded(labelled_folder, count, match):
    with pytest.raises(ValueError, match=match):
        quiz.draw_questions(labelled_folder, count)


def test_too_few_images_of_a_class_is_a_clear_error(labelled_folder):
    with pytest.raises(ValueError, match=r"Not enough real images .*: 10\. Received: count=30"):
        quiz.draw_questions(labelled_folder, 30)


def test_a_folder_without_labels_is_a_clear_error(tmp_path):
    write_images(tmp_path / "photos", 3, (1, 2, 3))
    with pytest.raises(ValueError, match="No dataset found"):
        quiz.draw_questions(tmp_path, 2)


def test_scores_carry_wilson_intervals():
    result = quiz.score(9, 15)
    assert result.accuracy == pytest.approx(0.6)
    assert (result.low, result.high) == pytest.approx((0.3575, 0.8018), abs=1e-3)
    assert result.describe() == "9 of 15 (60.0%, 95% interval 35.7%-80.2%)"
    assert quiz.score(15, 15).high == pytest.approx(1.0)
    with pytest.raises(ValueError, match="Received: correct=3, total=2"):
        quiz.score(3, 2)


def test_the_published_human_baseline_is_8_46_of_15():
    assert quiz.PUBLISHED_HUMAN_BASELINE.accuracy == pytest.approx(0.564)
    assert "63 people" in quiz.PUBLISHED_HUMAN_BASELINE.describe()


def test_model_decisions_join_the_answers_and_both_are_scored(labelled_folder):
    questions = quiz.draw_questions(labelled_folder, 4, seed=1)
    answers = [quiz.Answer(q, quiz.REAL) for q in questions]
    rows = [
        ResultRow(file=q.file, verdict="Inconclusive", label=label, probability_ai=0.25)
        for q, label in zip(questions[:3], ("Real", "AI-generated", "Real"), strict=True)
    ] + [ResultRow(file=questions[3].file, error="not scored: the API is down")]
    joined = quiz.with_model_decisions(answers, rows)
    assert [a.model_label for a in joined] == [quiz.REAL, quiz.AI_GENERATED, quiz.REAL, None]
    truths = [q.truth for q in questions]
    assert quiz.person_score(joined).correct == truths.count(quiz.REAL)
    expected_model = sum(
        label == truth for label, truth in zip(["real", "ai-generated", "real"], truths, strict=False)
    )
    model = quiz.model_score(joined)
    assert (model.correct, model.total) == (expected_model, 3)
    assert quiz.model_score(answers) is None


def test_answers_csv_has_one_row_per_question(labelled_folder):
    questions = quiz.draw_questions(labelled_folder, 3, seed=2)
    answers = [
        quiz.Answer(questions[0], quiz.AI_GENERATED, quiz.REAL, 0.125),
        quiz.Answer(questions[1], quiz.REAL),
        quiz.Answer(questions[2], questions[2].truth, questions[2].truth, 0.5),
    ]
    rows = list(csv.DictReader(io.StringIO(quiz.answers_csv(answers))))
    assert list(rows[0]) == list(quiz.CSV_COLUMNS)
    assert [row["question"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["file"] == questions[0].file and rows[0]["model_probability_ai"] == "0.125000"
    assert rows[1]["model_label"] == "" and rows[2]["correct"] == "1"
    assert rows[0]["correct"] == str(int(questions[0].truth == quiz.AI_GENERATED))


# --- the page -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(api_models) -> Iterator[str]:
    with serve_api(api_models) as url:
        yield url


def quiz_page(monkeypatch, tmp_path, url: str):
    monkeypatch.setenv("AICLASSIFY_API_URL", url)
    monkeypatch.setenv("AICLASSIFY_API_TIMEOUT_S", "30")
    monkeypatch.setenv("AICLASSIFY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AICLASSIFY_API_KEY", raising=False)
    at = streamlit_testing.AppTest.from_file(str(QUIZ_PAGE), default_timeout=APP_TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at


def take_quiz(at, count: int, seed: int, answer_for) -> list[quiz.Question]:
    at.number_input(key="quiz_count").set_value(count)
    at.number_input(key="quiz_seed").set_value(seed)
    at.button(key="quiz_start").click().run()
    questions = at.session_state["quiz"]["questions"]
    for question in questions:
        key = "answer_ai" if answer_for(question) == quiz.AI_GENERATED else "answer_real"
        at.button(key=key).click().run()
        assert not at.exception, at.exception
    return questions


def test_quiz_page_end_to_end_on_demo_images(api, monkeypatch, tmp_path):
    at = quiz_page(monkeypatch, tmp_path, api)
    assert at.selectbox(key="quiz_model").value == "general"
    questions = take_quiz(at, 4, seed=7, answer_for=lambda question: question.truth)
    answers = at.session_state["quiz"]["answers"]
    assert [a.answer for a in answers] == [q.truth for q in questions]
    assert at.metric[0].label == "You" and at.metric[0].value == "100%"
    assert any(c.value.startswith("4 of 4 (100.0%, 95% interval") for c in at.caption)
    scored, fatal = at.session_state["quiz"]["scored"][1:]
    assert fatal is None and all(a.model_label in quiz.LABELS for a in scored)
    assert at.metric[1].label == "The model" and at.metric[1].value.endswith("%")
    assert at.metric[2].value == "56.4%"
    table = at.dataframe[0].value
    assert list(table["file"]) == [q.file for q in questions]
    assert [b.label for b in at.get("download_button")] == ["Download my answers (CSV)"]


def test_the_same_seed_gives_another_session_the_same_quiz(api, monkeypatch, tmp_path):
    first = take_quiz(quiz_page(monkeypatch, tmp_path, api), 3, seed=11, answer_for=lambda q: quiz.REAL)
    second = take_quiz(quiz_page(monkeypatch, tmp_path, api), 3, seed=11, answer_for=lambda q: quiz.REAL)
    assert [q.file for q in first] == [q.file for q in second]


def test_quiz_page_draws_from_a_labelled_folder(api, monkeypatch, tmp_path, labelled_folder):
    at = quiz_page(monkeypatch, tmp_path, api)
    at.radio(key="quiz_source").set_value("A labelled folder on this machine").run()
    at.text_input(key="quiz_folder").input(str(labelled_folder)).run()
    questions = take_quiz(at, 2, seed=0, answer_for=lambda q: quiz.AI_GENERATED)
    assert all("test" in q.path for q in questions)
    assert sorted(q.truth for q in questions) == [quiz.AI_GENERATED, quiz.REAL]
    assert at.metric[0].value == "50%"  # one of each class, every answer "AI-generated"


def test_quiz_page_explains_a_folder_it_cannot_use(api, monkeypatch, tmp_path):
    at = quiz_page(monkeypatch, tmp_path, api)
    at.radio(key="quiz_source").set_value("A labelled folder on this machine").run()
    at.text_input(key="quiz_folder").input(str(tmp_path / "missing")).run()
    at.button(key="quiz_start").click().run()
    assert any("No quiz" in e.value and "does not exist" in e.value for e in at.error)
    assert "quiz" not in at.session_state


def test_the_person_still_gets_a_score_when_the_api_is_down(monkeypatch, tmp_path):
    with silent_server() as url:
        pass  # closed: nothing listens there any more
    at = quiz_page(monkeypatch, tmp_path, url)
    assert any("cannot take part" in w.value for w in at.sidebar.warning)
    take_quiz(at, 2, seed=0, answer_for=lambda q: quiz.REAL)
    assert at.metric[0].label == "You" and at.metric[1].value == "n/a"
    assert any("could not answer" in e.value for e in at.error)
