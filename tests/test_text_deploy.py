"""A text model's bundle is self-contained: it carries the tokenizer the model was trained with (no path of the
training machine), its README's Python turns text into exactly the data set's ids, and `edgepeft verify`
checks the tokenizer files and names a missing or altered one."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgepeft.artifacts.bundle import bundle_tokenizer, file_entries
from edgepeft.artifacts.run_folder import open_run
from edgepeft.cli import app
from edgepeft.errors import ArtifactError
from edgepeft.host.manager import default_manager
from edgepeft.train.loop import predict
from edgepeft.util.atomic import sha256_file

pytest.importorskip("peft")
pytest.importorskip("tokenizers")
pytest.importorskip("onnxruntime")

TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"}
HELD_OUT = 40
"""Review snippets from the end of the corpus: the run trained on its first 600."""


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), obj=default_manager(), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def bundle(text_run, tmp_path_factory) -> Path:
    """The tiny text run deployed for x86-server in fp32 (int8 would quantize the token ids)."""
    out = tmp_path_factory.mktemp("text-bundle")
    args = ["deploy", str(text_run), "--device", "x86-server", "--precision", "fp32", "--out", str(out)]
    result = _cli(*args, "--timing-seconds", "0.2")
    assert result.exit_code in (0, 10), result.output  # 10: a tiny model may miss the server's budgets
    return out / "tiny-text-x86-server"


@pytest.fixture(scope="module")
def held_out() -> list[str]:
    from edgepeft_text.rotten_tomatoes import read_rotten_tomatoes, rotten_tomatoes_file

    return read_rotten_tomatoes(rotten_tomatoes_file())[0][-HELD_OUT:]


def _absolute_paths(value) -> list[str]:
    if isinstance(value, dict):
        return [p for v in value.values() for p in _absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _absolute_paths(v)]
    return [value] if isinstance(value, str) and Path(value).is_absolute() else []


def _python_blocks(readme: str) -> dict[str, str]:
    """The README's Python snippets by section title."""
    return dict(re.findall(r"## ([^\n]+)\n```python\n(.*?)```", readme, flags=re.DOTALL))


def test_the_bundle_carries_the_tokenizer_and_no_path_of_the_training_machine(bundle, text_run):
    from edgepeft_text.tokenizer import tokenizer_folder

    manifest = json.loads((bundle / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    source = tokenizer_folder(pre["tokenizer"])
    assert {p.name for p in (bundle / "tokenizer").iterdir()} == TOKENIZER_FILES  # no weights, no model config
    assert pre["tokenizer_folder"] == "tokenizer" and set(pre["tokenizer_files"]) == TOKENIZER_FILES
    assert _absolute_paths(pre) == [] and str(source) not in (bundle / "manifest.json").read_text()
    assert _absolute_paths({k: v for k, v in manifest.items() if k != "provenance"}) == []
    listed = {e["path"]: e for e in manifest["files"]}
    for name in TOKENIZER_FILES:
        entry = listed[f"tokenizer/{name}"]
        assert entry["sha256"] == sha256_file(source / name) and entry["bytes"] == (source / name).stat().st_size
    readme = (bundle / "README.md").read_text()
    assert "Tokenizer.from_file('tokenizer/tokenizer.json')" in readme and "pad id 0" in readme
    assert "enable_padding(length=32, pad_id=0" in readme and "lowercases the text itself" in readme
    assert "shape [1, 32] for one text" in readme and "ort.InferenceSession('model.onnx')" in readme
    assert str(source) not in readme


def test_the_bundled_tokenizer_gives_the_data_set_ids_and_the_model_the_run_prediction(
    bundle, text_run, held_out, monkeypatch
):
    from edgepeft_text.tokenizer import encode, load_tokenizer, tokenizer_folder

    pre = json.loads((bundle / "manifest.json").read_text())["preprocessing"]
    source = tokenizer_folder(pre["tokenizer"])
    expected = encode(held_out, source, pre["max_length"])  # the ids training gave these texts
    assert (expected[:, -1] != pre["pad_token_id"]).any() and (expected[:, -1] == pre["pad_token_id"]).any()
    assert load_tokenizer(source).pad_token_id == pre["pad_token_id"]

    blocks = _python_blocks((bundle / "README.md").read_text())
    monkeypatch.chdir(bundle)  # the README's paths are the bundle's own
    rows, scores = [], []
    for text in held_out:
        scope = {"text": text}
        exec(blocks["Tokenize (Python, tokenizers)"], scope)
        exec(blocks["Load it (Python, onnxruntime)"], scope)
        rows.append(scope["x"][0])
        scores.append(scope["scores"][0])
    assert np.array_equal(np.array(rows), expected)

    manager = default_manager()
    student, _ = open_run(text_run, manager).student(manager)
    reference = predict(student, expected)
    assert np.array_equal(np.array(scores).argmax(1), reference.argmax(1))
    np.testing.assert_allclose(np.array(scores), reference, atol=1e-4)


def test_verify_checks_the_tokenizer_and_names_a_deleted_or_edited_file(bundle, tmp_path):
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    intact = _cli("verify", str(copy))
    assert intact.exit_code == 0, intact.output
    assert "tokenizer: 4 tokenizer files match the manifest" in intact.output
    assert "covers the sample ids, it pads with id 0" in intact.output
    assert _cli("verify", str(bundle.with_name(bundle.name + ".zip"))).exit_code == 0

    vocab = copy / "tokenizer" / "vocab.txt"
    original = vocab.read_bytes()
    vocab.unlink()
    deleted = _cli("verify", str(copy))
    assert deleted.exit_code == 8 and "Traceback" not in deleted.output
    assert "tokenizer/vocab.txt: missing - an app needs it to turn text into token ids: copy vocab.txt back" in (
        deleted.output.replace("\n", "")
    )
    vocab.write_bytes(original)

    tokenizer = copy / "tokenizer" / "tokenizer.json"
    tokenizer.write_text(re.sub(r'"lowercase":\s*true', '"lowercase": false', tokenizer.read_text()))
    edited = _cli("verify", str(copy))
    assert edited.exit_code == 8 and "Traceback" not in edited.output
    assert "tokenizer/tokenizer.json: sha256 differs from the manifest" in edited.output
    assert "or deploy the bundle again with `edgepeft deploy`" in edited.output.replace("\n", "")


def test_verify_tokenizes_the_sample_texts_when_the_samples_keep_them(bundle, text_run, tmp_path):
    from edgepeft_text.tokenizer import encode, tokenizer_folder

    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    with (text_run.parents[1] / "reviews.csv").open(newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    ids = encode(texts, tokenizer_folder(pre["tokenizer"]), pre["max_length"])  # the run's ids, to find each text
    samples = json.loads((copy / "samples.json").read_text())

    def rewrite(text_of) -> str:
        for sample in samples["samples"]:
            (match,) = np.flatnonzero((ids == np.array(sample["input"])).all(axis=1))
            sample["text"] = text_of(texts[match])
        (copy / "samples.json").write_text(json.dumps(samples))
        manifest["files"] = [e.model_dump() for e in file_entries(copy)]  # the manifest vouches for the edited samples
        (copy / "manifest.json").write_text(json.dumps(manifest))
        return _cli("verify", str(copy)).output

    assert "and gives the 8 sample texts' ids" in rewrite(lambda text: text)
    changed = rewrite(lambda text: "not the review: " + text)
    assert "tokenizer/tokenizer.json: sample 0's text gives other token ids than its input in samples.json" in changed


def test_only_the_tokenizer_files_are_bundled_and_a_local_folder_keeps_only_its_name(tmp_path):
    source = tmp_path / "my-bert"
    source.mkdir()
    for name in ("tokenizer.json", "vocab.txt", "spiece.model", "model.safetensors", "model.bin", "config.json"):
        (source / name).write_text(name)
    out = tmp_path / "bundle"
    pre = bundle_tokenizer({"tokenizer": str(source), "tokenizer_folder": str(source), "max_length": 8}, out)
    bundled = ["spiece.model", "tokenizer.json", "vocab.txt"]
    assert pre == {"tokenizer": "my-bert", "tokenizer_folder": "tokenizer", "max_length": 8, "tokenizer_files": bundled}
    assert sorted(p.name for p in (out / "tokenizer").iterdir()) == bundled
    assert (out / "tokenizer" / "vocab.txt").read_text() == "vocab.txt"
    assert bundle_tokenizer({"input": "pixels", "scale": 0.5}, out) == {"input": "pixels", "scale": 0.5}

    weights_only = tmp_path / "weights-only"
    weights_only.mkdir()
    (weights_only / "model.safetensors").write_text("")
    with pytest.raises(ArtifactError, match="no Hugging Face tokenizer files") as error:
        bundle_tokenizer({"tokenizer": "w", "tokenizer_folder": str(weights_only)}, tmp_path / "other")
    assert error.value.where == str(weights_only) and "save_pretrained" in error.value.fix
