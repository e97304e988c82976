"""The human-vs-model quiz page: real or AI-generated, one image at a time, then you against the model.

A second page of the Streamlit app (``make app``; the sidebar lists it). The logic lives in the
installed package's ``aiclassify.page.quiz``; the model's answers come from the aiclassify API at
``AICLASSIFY_API_URL``, like the upload page's. Nothing the person answers leaves the machine.
"""

from __future__ import annotations

import io

import streamlit as st
from PIL import Image

from aiclassify.data.demo import write_demo_dataset
from aiclassify.page import quiz, results
from aiclassify.page.client import ApiCallError, ApiClient, api_url_from_env

DEMO_SOURCE = "Demo images (made by the project)"
FOLDER_SOURCE = "A labelled folder on this machine"
DEMO_IMAGES_PER_CLASS = 60
DISPLAY_SIDE = 256


def settings() -> tuple[str | None, int, int, bool]:
    """Sidebar: where images come from, how many, the seed; (folder, count, seed, start)."""
    st.sidebar.header("Quiz")
    source = st.sidebar.radio("Images", [DEMO_SOURCE, FOLDER_SOURCE], key="quiz_source")
    folder = None
    if source == FOLDER_SOURCE:
        folder = st.sidebar.text_input(
            "Folder",
            key="quiz_folder",
            help="A dataset folder with 'real' and 'fake' folders (its test split, if it has splits), "
            "e.g. an extracted CIFAKE.",
        ).strip()
    count = st.sidebar.number_input(
        "Questions", 1, quiz.MAX_QUESTIONS, quiz.DEFAULT_QUESTIONS, key="quiz_count"
    )
    seed = st.sidebar.number_input(
        "Seed", 0, 2**31 - 1, 0, key="quiz_seed", help="The same folder, count and seed give the same quiz."
    )
    start = st.sidebar.button("Start a new quiz", key="quiz_start", type="primary")
    return (folder if source == FOLDER_SOURCE else None), int(count), int(seed), start


def model_choice() -> tuple[ApiClient, str | None]:
    """Sidebar: the API and the model that answers the quiz (None: the API's default)."""
    client = ApiClient(st.sidebar.text_input("API URL", value=api_url_from_env(), key="quiz_api_url"))
    try:
        names = [model.name for model in client.models() if model.available]
    except ApiCallError as error:
        st.sidebar.warning(f"The model cannot take part yet: {error.message}")
        return client, None
    if not names:
        st.sidebar.warning("The API has no model available yet (still loading?).")
        return client, None
    default = names.index("general") if "general" in names else 0
    return client, st.sidebar.selectbox(
        "Model", names, index=default, key="quiz_model", help="The model that answers the same images."
    )


def start_quiz(folder: str | None, count: int, seed: int) -> None:
    """Draw the questions into the session, or say why not."""
    try:
        if folder is None:
            folder = str(write_demo_dataset(images_per_class=DEMO_IMAGES_PER_CLASS))
        elif not folder:
            raise ValueError("Enter a folder.")
        questions = quiz.draw_questions(folder, count, seed)
    except (ValueError, OSError) as error:
        st.session_state.pop("quiz", None)
        st.error(f"No quiz: {error}")
        return
    st.session_state["quiz"] = {"questions": questions, "answers": [], "scored": None}


def enlarged(content: bytes) -> bytes:
    """Small images scaled up with square pixels, so their detail stays visible."""
    image = Image.open(io.BytesIO(content)).convert("RGB")
    if max(image.size) >= DISPLAY_SIDE:
        return content
    scale = DISPLAY_SIDE // max(image.size) or 1
    buffer = io.BytesIO()
    image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def ask(state: dict) -> None:
    """The next question, and the two answers."""
    questions, answers = state["questions"], state["answers"]
    question = questions[len(answers)]
    st.progress(len(answers) / len(questions), text=f"Question {len(answers) + 1} of {len(questions)}")
    try:
        st.image(enlarged(question.read()), width=DISPLAY_SIDE)
    except (OSError, ValueError) as error:
        st.warning(f"{question.file} cannot be shown ({error}); answer as you would guess.")
    st.markdown("**Is this image real or AI-generated?**")
    real, generated = st.columns(2)
    if real.button("Real", key="answer_real", use_container_width=True):
        answers.append(quiz.Answer(question, quiz.REAL))
        st.rerun()
    if generated.button("AI-generated", key="answer_ai", use_container_width=True):
        answers.append(quiz.Answer(question, quiz.AI_GENERATED))
        st.rerun()


def model_answers(
    state: dict, client: ApiClient, model: str | None
) -> tuple[list[quiz.Answer], ApiCallError | None]:
    """The answers with the model's decisions on the same images (scored once per quiz and model)."""
    key = (client.base_url, model)
    if state["scored"] is None or state["scored"][0] != key:
        files = [(answer.question.file, answer.question.read()) for answer in state["answers"]]
        with st.spinner(f"The model is answering the same {len(files)} images…"):
            rows, fatal = results.score_files(client, files, model=model)
        scored = (key if fatal is None else None, quiz.with_model_decisions(state["answers"], rows), fatal)
        state["scored"] = scored
    return state["scored"][1], state["scored"][2]


def show_scores(state: dict, client: ApiClient, model_name: str | None) -> None:
    """You, the model and the published human baseline; the answers table and its CSV."""
    answers, fatal = model_answers(state, client, model_name)
    you, model = quiz.person_score(answers), quiz.model_score(answers)
    st.subheader("Results")
    left, middle, right = st.columns(3)
    left.metric("You", f"{you.accuracy:.0%}")
    left.caption(you.describe())
    middle.metric("The model", "n/a" if model is None else f"{model.accuracy:.0%}")
    middle.caption("not scored" if model is None else model.describe())
    right.metric("People in the published study", f"{quiz.PUBLISHED_HUMAN_BASELINE.accuracy:.1%}")
    right.caption(quiz.PUBLISHED_HUMAN_BASELINE.describe())
    if fatal is not None:
        st.error(f"The model could not answer: {fatal.message}")
    st.caption(
        "Intervals are 95% Wilson intervals: with few questions, chance alone moves a score a lot. "
        "The model answers at its default threshold; a score is a signal, not proof."
    )
    st.dataframe(
        [
            {
                "question": number,
                "file": answer.question.file,
                "truth": answer.question.truth,
                "your answer": answer.answer,
                "model": answer.model_label or "not scored",
            }
            for number, answer in enumerate(answers, start=1)
        ],
        hide_index=True,
    )
    st.download_button(
        "Download my answers (CSV)",
        quiz.answers_csv(answers),
        file_name="aiclassify-quiz-answers.csv",
        mime="text/csv",
        key="quiz_download",
    )


def main() -> None:
    """Render the page."""
    st.set_page_config(page_title="aiclassify: you against the model", layout="centered")
    st.title("Real or AI-generated? You against the model")
    st.caption(
        "Your answers stay in this browser session and the CSV you download: nothing you answer is "
        "sent anywhere. Only the images go to the aiclassify API, after the last question, for the "
        "model's answers."
    )
    folder, count, seed, start = settings()
    client, model_name = model_choice()
    if start:
        start_quiz(folder, count, seed)
    state = st.session_state.get("quiz")
    if state is None:
        st.info("Choose the images in the sidebar and start a quiz.")
    elif len(state["answers"]) < len(state["questions"]):
        ask(state)
    else:
        show_scores(state, client, model_name)


if __name__ == "__main__":
    main()
