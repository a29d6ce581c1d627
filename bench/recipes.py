"""The classic text and tabular recipes end to end: per recipe, the test metrics and the wall time
of the real stages (download to evaluate; train and evaluate as fresh processes, as `dvc repro`
runs them), on this machine.

Data: `diabetes` ships inside scikit-learn and always runs. IMDB, Reuters and Boston housing need
Keras's files (imdb.npz, imdb_word_index.json, reuters.npz, reuters_word_index.json,
boston_housing.npz) in a local directory: `--keras-mirror DIR`, else those recipes are skipped.
The text-folder case is generated here (a synthetic two-class corpus), for timing only.

    python bench/recipes.py                                   # diabetes and the synthetic text folder
    python bench/recipes.py --keras-mirror /data/keras        # + the IMDB, Reuters and Boston recipes

Writes bench/results/recipes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

from stage import ROOT, prepare, run_stages  # bench/stage.py: python puts bench/ on sys.path

# name -> (overrides, the published figure to compare with)
RECIPES = {
    "diabetes_dense": (["experiment=boston_kfold", "data=diabetes"], "none published for this recipe"),
    "textfolder_text_cnn": (
        ["data=textfolder", "model=text_cnn", "data.max_length=200", "trainer.max_epochs=5"],
        "synthetic",
    ),
    "imdb_dense": (["experiment=imdb_dense"], "about 88% test accuracy (4 epochs)"),
    "imdb_text_cnn": (["experiment=imdb_text_cnn"], "word order: to compare with imdb_dense"),
    "reuters_dense": (["experiment=reuters_dense"], "about 78-80% test accuracy"),
    "boston_kfold": (["experiment=boston_kfold"], "test MAE about 2.5"),
}
KERAS = ("imdb_dense", "imdb_text_cnn", "reuters_dense", "boston_kfold")


def synthetic_reviews(root: Path, seed: int = 0) -> Path:
    """2 x 1,000 training and 2 x 250 test documents of 150 words; a class's cue words are 2% of them."""
    rng = random.Random(seed)
    filler = [f"w{i}" for i in range(5000)]
    for split, n in (("train", 1000), ("test", 250)):
        for label, cues in (("pos", ("great", "good", "fine")), ("neg", ("awful", "bad", "dull"))):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                words = rng.choices(filler, k=147) + rng.choices(cues, k=3)
                rng.shuffle(words)
                (root / split / label / f"{i}.txt").write_text(" ".join(words))
    return root


def run(name: str, overrides: list[str], work: Path) -> dict:
    start = time.perf_counter()
    summary = prepare(work, overrides)
    prepared = time.perf_counter() - start
    result = run_stages(work, overrides, name, evaluate=True)
    metrics = {k: v for k, v in result.items() if k.startswith("test/")}
    wall = time.perf_counter() - start
    return {"recipe": name, "sizes": summary["sizes"], **metrics, "prepare_s": prepared, "wall_s": wall,
            "train_s": result["train_s"], "startup_s": result["startup_s"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keras-mirror", type=Path, help="directory with Keras's dataset files")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="recipes-") as tmp:
        for name in args.recipes:
            overrides, published = RECIPES[name]
            if name in KERAS:
                if args.keras_mirror is None:
                    print(f"{name}: skipped (no --keras-mirror)")
                    continue
                overrides = [*overrides, f"data.mirror={args.keras_mirror.resolve()}"]
            if name.startswith("textfolder"):
                overrides = [*overrides, f"data.path={synthetic_reviews(Path(tmp) / 'reviews')}"]
            row = {**run(name, overrides, Path(tmp) / name), "published": published}
            print(json.dumps(row))
            rows.append(row)
    write(rows)


def write(rows: list[dict]) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipes.json").write_text(json.dumps({"machine": platform.processor(), "rows": rows}, indent=2))
    lines = ["| recipe | test metrics | published | wall s (train s, start-up s) |", "|---|---|---|---|"]
    for r in rows:
        tests = ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k.startswith("test/"))
        times = f"{r['wall_s']:.1f} ({r['train_s']:.1f}, {r['startup_s']:.1f})"
        lines.append(f"| {r['recipe']} | {tests} | {r['published']} | {times} |")
    (out / "recipes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
