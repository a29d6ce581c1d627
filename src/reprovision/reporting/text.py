"""Text classification's sections: the most confident mistakes as words with their class
probabilities, and the words that pushed a seeded choice of predictions (integrated gradients),
highlighted in the text the model read."""

from __future__ import annotations

import numpy as np
import torch

from reprovision import inspection
from reprovision.data.raw import START
from reprovision.data.shards import Shards
from reprovision.files import read_json
from reprovision.reporting.confusion import confusion_sections, misclassified, top_probabilities
from reprovision.reporting.page import RunFiles, escape, section, shade

SHOWN_WORDS = 80  # the first words of a document on the page: IMDB's reviews run to 2,500
TOP_CLASSES = 3  # class probabilities shown per document (and the actual class's, if not among them)
STRONGEST = 5  # words listed for and against each explained prediction, from the whole document


def sections(run: RunFiles) -> list[str]:
    words = read_json(run.split_dir / "words.json")  # the dataset's id -> word, as the split holds them
    mistakes = misclassified(run.predictions, run.cfg.report.gallery_size)
    shown = "\n".join(mistake_html(p, run.test_x[int(p["index"])], words, run.classes) for p in mistakes)
    n_wrong = sum(p["actual"] != p["predicted"] for p in run.predictions)
    return [
        *confusion_sections(run, noun="documents"),
        section(
            f"Misclassified test documents ({n_wrong} of {len(run.predictions)}; most confident first)",
            f'<div class="mistakes">\n{shown or "<p>No misclassified test documents.</p>"}\n</div>',
        ),
        section("Words that pushed the prediction", attributions_html(run)),
    ]


def first_words(words: list[str]) -> str:
    """The first SHOWN_WORDS words, escaped, an ellipsis after them if the document goes on."""
    return escape(" ".join(words[:SHOWN_WORDS])) + (" …" if len(words) > SHOWN_WORDS else "")


def probabilities_html(prediction: dict[str, str], classes: list[str]) -> str:
    top = top_probabilities(prediction, classes, TOP_CLASSES)
    return '<div class="probs">' + ", ".join(f"{escape(c)} {p:.1%}" for c, p in top) + "</div>"


def caption(p: dict[str, str]) -> str:
    return escape(
        f"test #{p['index']}: actual {p['actual']}, predicted {p['predicted']} ({float(p['confidence']):.0%})"
    )


def mistake_html(prediction: dict[str, str], ids: np.ndarray, words: list[str], classes: list[str]) -> str:
    """A misclassified document in the dataset's own words (padding and the start mark dropped)."""
    text = first_words([words[i] for i in ids if i > START])
    return (
        f'<div class="doc" id="mistake-{int(prediction["index"])}">{caption(prediction)}'
        f'<p class="words">{text}</p>{probabilities_html(prediction, classes)}</div>'
    )


EXPLAINED = """<p>Each document as the model read it (its vocabulary: other words are &lt;unk&gt;), every
word shaded by how much it moved the predicted class's score, from a blank document (integrated
gradients): red pushed towards the prediction, blue against it, the stronger the more. Hover a
word for its value.</p>
"""


def attributions_html(run: RunFiles) -> str:
    """Highlighted documents for a seeded choice of correct and wrong predictions, each
    explaining the predicted class, on the normalise stage's encoding of the test split (vocabulary ids)."""
    r = run.cfg.report
    if not r.examples:
        return "<p>No documents explained: report.examples is 0.</p>"
    if run.data_dir is None:
        return "<p>No words explained: the report needs the normalise stage's output (--data), the ids read.</p>"
    ids = Shards(run.data_dir / "test")
    vocabulary = run.model.hparams.inputs["vocabulary"]
    actual, predicted = run.class_indices("actual"), run.class_indices("predicted")
    parts = [EXPLAINED]
    for kind, chosen in inspection.select_examples(actual, predicted, r.examples, run.cfg.seed).items():
        if not len(chosen):
            continue
        target = torch.from_numpy(predicted[chosen])
        scores = inspection.word_attributions(run.model, torch.from_numpy(ids[chosen]), target).numpy()
        parts.append(f"<h3>{kind} predictions</h3>")
        for i, row_scores in zip(chosen, scores, strict=True):
            parts.append(highlighted_html(run.predictions[i], ids[i], row_scores, vocabulary))
    return "\n".join(parts)


def highlighted_html(prediction: dict[str, str], ids: np.ndarray, scores: np.ndarray, vocabulary: list[str]) -> str:
    """A document's words (vocabulary ids), each shaded by its attribution; the strongest words
    for and against listed after it, from the whole document."""
    keep = ids > START
    words, scores = [vocabulary[i] for i in ids[keep]], scores[keep]
    limit = float(np.abs(scores).max(initial=0.0))
    spans = [
        f'<span style="{shade(s, limit)}" title="{s:+.3g}">{escape(w)}</span>'
        for w, s in zip(words[:SHOWN_WORDS], scores[:SHOWN_WORDS], strict=True)
    ]
    more = " …" if len(words) > SHOWN_WORDS else ""
    return (
        f'<div class="doc" id="words-{int(prediction["index"])}">{caption(prediction)}'
        f'<p class="words">{" ".join(spans)}{more}</p>{strongest_html(words, scores)}</div>'
    )


def strongest_html(words: list[str], scores: np.ndarray) -> str:
    """The STRONGEST words that pushed hardest for the prediction, and against it (each word once,
    at its strongest)."""
    lists = []
    for label, sign in (("for", 1.0), ("against", -1.0)):
        seen: dict[str, float] = {}
        for i in np.argsort(-sign * scores, kind="stable"):
            if sign * scores[i] > 0 and words[i] not in seen and len(seen) < STRONGEST:
                seen[words[i]] = float(scores[i])
        listed = ", ".join(f"{escape(w)} ({s:+.3g})" for w, s in seen.items()) or "none"
        lists.append(f"{label}: {listed}")
    return f'<div class="strongest">{"; ".join(lists)}</div>'
