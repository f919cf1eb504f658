import os

import pytest

# One torch (OpenMP) thread in this process and in the ones tests start: on a machine with a second busy process,
# each multi-threaded pool spin-waits for a core it cannot get, and tiny trainings and exports run many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = ["edgepeft.testing"]

SNIPPETS = 600


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    """A tiny text run on 600 real review snippets, trained once per session: a 2-layer MiniLM cut as the
    teacher through LoRA; a student of two layers sharing their weights, a smaller feed-forward block, its
    vocabulary pruned and its token embedding factorized, distilled from outputs, hidden states and attention."""
    from edgepeft.testing import once_per_session  # imported here: pytest_plugins loads edgepeft.testing first

    return once_per_session(tmp_path_factory, "text-run", _train_text_run)


def _train_text_run(root):
    import csv

    from edgepeft_text.rotten_tomatoes import read_rotten_tomatoes, rotten_tomatoes_file

    from edgepeft.testing import train_run

    texts, labels, _ = read_rotten_tomatoes(rotten_tomatoes_file())
    with (root / "reviews.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts[:SNIPPETS], labels[:SNIPPETS], strict=True))
    recipe = {
        "name": "tiny-text",
        "seed": 0,
        "data": {
            "dataset": "text-csv",
            "batch_size": 32,
            "options": {"path": str(root / "reviews.csv"), "max_length": 32},
        },
        "teacher": {
            "model": "hf-classifier",
            "epochs": 1,
            "lr": 0.002,
            "options": {"layers": [0, 1]},
            "techniques": [{"name": "lora", "r": 4, "targets": ["query", "value"]}],
        },
        "student": {
            "model": "hf-classifier",
            "epochs": 1,
            "lr": 0.0005,
            "options": {"layers": [0, 1], "intermediate_size": 256},
        },
        "techniques": [
            {"name": "prune-vocab"},
            {"name": "factorize-embeddings", "rank": 16},
            {"name": "share"},
            {"name": "distill", "alpha": 0.5, "temperature": 2.0, "hidden": 1.0, "attention": 1.0},
        ],
    }
    return train_run(root, recipe)
