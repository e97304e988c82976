"""Render an evaluation report (the dict written to report.json) as readable Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiclassify import LABEL_NAMES


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table (``-`` for missing values)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return lines


def _summary_rows(summary: dict) -> list[list[Any]]:
    keys = (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "log_loss",
    )
    return [[key, summary.get(key)] for key in keys]


def _class_report(summary: dict) -> list[str]:
    report = summary["classification_report"]
    rows = [
        [
            name,
            report[name]["precision"],
            report[name]["recall"],
            report[name]["f1-score"],
            int(report[name]["support"]),
        ]
        for name in (*LABEL_NAMES, "macro avg", "weighted avg")
        if name in report
    ]
    return table(["class", "precision", "recall", "F1", "support"], rows)


def _confusion(summary: dict) -> list[str]:
    matrix = summary["confusion_matrix"]
    rows = [[f"true {name}", *matrix[i]] for i, name in enumerate(LABEL_NAMES)]
    return table(["", *(f"predicted {name}" for name in LABEL_NAMES)], rows)


def _intro(report: dict[str, Any]) -> str:
    size = report["image_size"]
    return (
        f"Model `{report['model']}` ({fmt(report['parameters'])} parameters, {size}x{size} input), "
        f"evaluated {report['evaluated']} on {report['data']['test_examples']} test images from "
        f"`{report['data']['root']}`. Decision threshold: {fmt(report['threshold'])} on "
        "P(AI-generated); positive class: AI-generated. Scores come from the pixels only: "
        "embedded metadata (Content Credentials, XMP, EXIF, generator text chunks) never reaches "
        "the model and is not part of this evaluation."
    )


def _training_line(training: dict[str, Any], evaluation_seconds: float | None) -> str:
    return (
        f"Training: {fmt(training.get('train_seconds'), 1)} s, {fmt(training.get('epochs_completed'))} "
        f"epochs, best epoch {fmt(training.get('best_epoch'))}. "
        f"Evaluation took {fmt(evaluation_seconds, 1)} s."
    )


def _cross_filter(section: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"`{row['filter']}`",
            "n/a" if row["accuracy"] is None else row["accuracy"],
            "n/a" if row["roc_auc"] is None else row["roc_auc"],
            row["examples"],
        ]
        for row in section["rows"]
    ]
    return [
        "## Cross-filter test",
        "",
        f"Trained with input filter `{section['trained_filter']}`; each row scores the clean test set "
        "with that filter replaced by another (the same trained layers; `none`: unfiltered images). "
        "n/a: the filter's output has a different channel count than the trained layers expect.",
        "",
        *table(["test filter", "accuracy", "ROC-AUC", "images"], rows),
        "",
    ]


def _band_confidence(band: dict[str, Any]) -> str:
    confidence = band.get("confidence")
    if not confidence:
        return ""
    return (
        f", each share bounded with {fmt(confidence, 2)} confidence (its one-sided Clopper-Pearson "
        "upper bound on validation is within the budget, not just the share itself)"
    )


def _band(band: dict[str, Any]) -> list[str]:
    rows = []
    for split in ("validation", "test"):
        summary, counts = band[split], band[split]["counts"]
        rows.append(
            [
                split,
                summary["coverage"],
                summary["confident_accuracy"],
                summary["fpr"],
                summary["recall"],
                summary["fnr"],
                counts["images"],
                counts["called_ai_generated"],
                counts["called_real"],
                counts["inconclusive"],
                counts["false_positives"],
                counts["false_negatives"],
            ]
        )
    target = fmt(band["target_fpr"], 3)
    lines = [
        "## Inconclusive band",
        "",
        f"Verdicts on the calibrated probability p: {band['rule']}. lower = {fmt(band['lower'])}, "
        f"upper = {fmt(band['upper'])}, chosen on validation: upper is the lowest threshold at which at "
        f"most {target} of the real images are called ai-generated; lower is the highest threshold at "
        f"which at most {target} of the AI-generated images are called real (both shares of all the "
        f"images of that class, not of the verdicts given){_band_confidence(band)}.",
        "",
    ]
    if band.get("empty"):
        lines += [f"**{band.get('note') or 'Empty band: no image is inconclusive.'}**", ""]
    lines += [f"**{note[0].upper()}{note[1:]}.**" for note in band.get("notes") or []]
    if band.get("notes"):
        lines.append("")
    return [
        *lines,
        "Coverage: share of images with a confident verdict; accuracy: of the confident verdicts; "
        "FPR: share of real images called ai-generated; recall: share of AI-generated images called "
        "ai-generated; FNR: share of AI-generated images called real.",
        "",
        *table(
            [
                "split",
                "coverage",
                "confident accuracy",
                "FPR",
                "recall",
                "FNR",
                "images",
                "called AI",
                "called real",
                "inconclusive",
                "false positives",
                "false negatives",
            ],
            rows,
        ),
        "",
    ]


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report: headline metrics, per-class report, calibration, operating points, tiers, OOD."""
    test, calibration = report["test"], report["calibration"]
    lines = [
        f"# Evaluation of run `{report['run']}`",
        "",
        _intro(report),
        "",
        _training_line(report.get("training", {}), report.get("evaluation_seconds")),
        "",
        "## Test metrics",
        "",
        *table(
            ["metric", "test", "validation"],
            [[k, v, report["validation"].get(k)] for k, v in _summary_rows(test)],
        ),
        "",
        *_class_report(test),
        "",
        *_confusion(test),
        "",
        "## Calibration",
        "",
        f"Temperature scaling fitted on the validation split: T = {fmt(calibration['temperature'])} "
        "(calibrated P = sigmoid(logit(p) / T)). Expected calibration error (15 equal-width bins):",
        "",
        *table(
            ["split", "ECE before", "ECE after"],
            [
                ["validation", calibration["ece_before"], calibration["ece_after"]],
                ["test", calibration["test_ece_before"], calibration["test_ece_after"]],
            ],
        ),
        "",
        "## Operating points",
        "",
        "Thresholds on the calibrated probability, chosen on validation; FPR = share of real images "
        "flagged as AI-generated, TPR = share of AI-generated images caught.",
        "",
        *table(
            ["name", "target FPR", "threshold", "validation FPR", "validation TPR", "test FPR", "test TPR"],
            [
                [
                    p["name"],
                    p["target_fpr"],
                    p["threshold"],
                    p["fpr"],
                    p["tpr"],
                    p["test"]["fpr"],
                    p["test"]["tpr"],
                ]
                for p in report["operating_points"]
            ],
        ),
        "",
        *(_band(report["band"]) if report.get("band") else []),
        "## Robustness tiers",
        "",
        "The test set transformed with Pillow, then scored through the run's own bytes signature.",
        "",
        *table(
            ["tier", "accuracy", "ROC-AUC", "images"],
            [[r["label"], r["accuracy"], r["roc_auc"], r["examples"]] for r in report["robustness"]],
        ),
        "",
    ]
    if report.get("cross_filter"):
        lines += _cross_filter(report["cross_filter"])
    if report["ood"]:
        lines += ["## Out-of-distribution sets", ""]
        rows = [
            [
                name,
                s["examples"],
                s["accuracy"],
                s["roc_auc"],
                s["average_precision"],
                s["mean_probability_ai"],
                s["root"],
            ]
            for name, s in report["ood"].items()
        ]
        lines += [*table(["set", "images", "accuracy", "ROC-AUC", "AP", "mean P(AI)", "folder"], rows), ""]
    if report.get("faces"):
        from aiclassify.evaluate.faces import markdown_lines

        lines += markdown_lines(report["faces"])
    if report["figures"]:
        lines += ["## Figures", ""]
    lines += [f"![{name}]({path})" for name, path in report["figures"].items()]
    return "\n".join(lines) + "\n"
