import pytest

pytest_plugins = ["edgepeft.testing"]

SNIPPETS = 600


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    """A tiny text run on 600 real review snippets, trained once per session: a 2-layer MiniLM cut as the
    teacher through LoRA; a student of two layers sharing their weights, a smaller feed-forward block, its
    vocabulary pruned and its token embedding factorized, distilled from outputs, hidden states and attention."""
    import csv

    from edgepeft_text import read_rotten_tomatoes, rotten_tomatoes_file
    from typer.testing import CliRunner

    from edgepeft.cli.app import app
    from edgepeft.host.manager import default_manager
    from edgepeft.testing import write_recipe  # imported here: pytest_plugins loads edgepeft.testing first

    root = tmp_path_factory.mktemp("text")
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
    path = write_recipe(root / "tiny-text.toml", recipe)
    result = CliRunner().invoke(app, ["train", str(path), "--runs-dir", str(root / "runs")], obj=default_manager())
    assert result.exit_code == 0, result.output
    return root / "runs" / "tiny-text"
