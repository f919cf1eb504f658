"""The hf-classifier model family: the packaged MiniLM, students cut from its layers, no downloads, exports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import edgepeft
from edgepeft.host.manager import default_manager
from edgepeft.train.loop import predict

pytest.importorskip("transformers")

TEXTS = ["a gorgeous, witty, seductive movie.", "the film is a mess from start to finish", "dull", "a triumph"]


@pytest.fixture(scope="module")
def family():
    return default_manager().models.get("hf-classifier")


@pytest.fixture(scope="module")
def ids() -> np.ndarray:
    from edgepeft_hf.model_folder import model_folder
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_folder("all-minilm-l6-v2")), local_files_only=True)
    encoded = tokenizer(TEXTS, padding="max_length", max_length=24, truncation=True, return_tensors="np")
    return encoded["input_ids"].astype(np.float32)


def test_a_student_keeps_the_chosen_teacher_layers_and_rebuilds_without_pretrained_weights(family, ids):
    teacher = family().build(family.Options(), (24,), 2)
    student = family().build(family.Options(layers=[0, 5]), (24,), 2)
    layers = student.model.base_model.encoder.layer
    assert len(layers) == 2 and student.model.config.num_hidden_layers == 2
    for kept, source in zip(layers, (0, 5), strict=True):
        original = teacher.model.base_model.encoder.layer[source]
        assert torch.equal(kept.output.dense.weight, original.output.dense.weight)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters()) * 0.7
    rebuilt = family().build(family.Options(layers=[0, 5], pretrained=False), (24,), 2)
    rebuilt.load_state_dict(student.state_dict())
    np.testing.assert_allclose(predict(rebuilt, ids), predict(student, ids), atol=1e-6)


def test_padding_is_masked(family, ids):
    model = family().build(family.Options(layers=[0]), (24,), 2)
    longer = np.concatenate([ids, np.zeros((len(ids), 8), np.float32)], axis=1)  # more [PAD] (id 0)
    np.testing.assert_allclose(predict(model, longer), predict(model, ids), atol=1e-5)
    alone = np.concatenate([predict(model, row[None]) for row in ids])  # each row cut to its own length
    np.testing.assert_allclose(predict(model, ids), alone, atol=1e-5)  # in a batch: padded to the longest


def _keeping_all_changes_nothing(family, ids, **option):
    """The one-layer model, after checking that ``option`` set to keep everything leaves its answers as they are."""
    torch.manual_seed(0)  # the new classification head starts alike
    full = family().build(family.Options(layers=[0]), (24,), 2)
    torch.manual_seed(0)
    same = family().build(family.Options(layers=[0], **option), (24,), 2)
    np.testing.assert_allclose(predict(same, ids), predict(full, ids), atol=1e-5)  # all kept, in order
    return full


def test_feed_forward_blocks_keep_their_most_important_neurons(family, ids):
    full = _keeping_all_changes_nothing(family, ids, intermediate_size=1536)
    cut = family().build(family.Options(layers=[0], intermediate_size=512), (24,), 2)
    up, down = (
        full.model.base_model.encoder.layer[0].intermediate.dense,
        full.model.base_model.encoder.layer[0].output.dense,
    )
    importance = up.weight.norm(dim=1) * down.weight.norm(dim=0)
    kept = cut.model.base_model.encoder.layer[0].intermediate.dense.weight
    assert kept.shape == (512, 384) and torch.equal(kept, up.weight[importance.topk(512).indices.sort().values])
    rebuilt = family().build(family.Options(layers=[0], intermediate_size=512, pretrained=False), (24,), 2)
    rebuilt.load_state_dict(cut.state_dict())
    with pytest.raises(edgepeft.ConfigError, match="intermediate_size 2000 exceeds the pretrained layers' 1536"):
        family().build(family.Options(layers=[0], intermediate_size=2000), (24,), 2)


def test_attention_keeps_its_most_important_heads(family, ids):
    full = _keeping_all_changes_nothing(family, ids, attention_heads=12)
    cut = family().build(family.Options(layers=[0], attention_heads=5), (24,), 2)
    attention, output = (
        full.model.base_model.encoder.layer[0].attention.self,
        full.model.base_model.encoder.layer[0].attention.output.dense,
    )
    value = attention.value.weight.reshape(12, 32, 384).flatten(1).norm(dim=1)
    out = output.weight.reshape(384, 12, 32).permute(1, 0, 2).flatten(1).norm(dim=1)
    heads = (value * out).topk(5).indices.sort().values
    rows = (heads[:, None] * 32 + torch.arange(32)).flatten()
    kept = cut.model.base_model.encoder.layer[0].attention
    assert kept.self.query.weight.shape == (160, 384) and kept.output.dense.weight.shape == (384, 160)
    assert torch.equal(kept.self.key.weight, attention.key.weight[rows])
    assert torch.equal(kept.output.dense.weight, output.weight[:, rows])
    assert predict(cut, ids).shape == (4, 2)
    rebuilt = family().build(family.Options(layers=[0], attention_heads=5, pretrained=False), (24,), 2)
    rebuilt.load_state_dict(cut.state_dict())
    np.testing.assert_allclose(predict(rebuilt, ids), predict(cut, ids), atol=1e-6)
    with pytest.raises(edgepeft.ConfigError, match="attention_heads 13 exceeds the pretrained layers' 12 heads"):
        family().build(family.Options(layers=[0], attention_heads=13), (24,), 2)


def test_no_downloads_and_bad_options_are_clear(family):
    with pytest.raises(edgepeft.ConfigError, match="'bert-base-uncased' is not a local folder; edgepeft does not"):
        family().build(family.Options(path="bert-base-uncased"), (24,), 2)
    with pytest.raises(edgepeft.ConfigError, match=r"layers \[7\] do not exist: the model .* has 6 encoder layers"):
        family().build(family.Options(layers=[0, 7]), (24,), 2)
    with pytest.raises(ValidationError, match="set pretrained = false"):
        family.Options(hidden_size=128)
    with pytest.raises(edgepeft.ConfigError, match="takes token ids"):
        family().build(family.Options(), (1, 8, 8), 10)
    narrow = family().build(family.Options(hidden_size=128, pretrained=False, layers=[0, 1]), (24,), 2)
    assert narrow.model.config.hidden_size == 128 and narrow.model.config.num_attention_heads == 2


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_exports_match_pytorch(family, ids, backend, tmp_path):
    cls = default_manager().backends.get(backend)
    if cls.unavailable_reason():
        pytest.skip(cls.unavailable_reason())
    model = family().build(family.Options(layers=[0, 5]), (24,), 2).eval()
    artifact = cls().export(model, ids[:2], tmp_path, edgepeft.ExportOptions(batch_size=2))
    runner = cls().load(artifact, edgepeft.ExportOptions())
    np.testing.assert_allclose(runner(ids), predict(model, ids), atol=1e-4)


def _tiny_task(ids: np.ndarray) -> edgepeft.TaskData:
    x, y = np.repeat(ids, 8, axis=0), np.tile(np.array([1, 0, 0, 1]), 8)
    split = edgepeft.Split(x, y)
    return edgepeft.TaskData("tiny-text", split, split, split, labels=["rotten", "fresh"])


@pytest.mark.parametrize("merge", [True, False])
def test_lora_trains_adapters_and_the_head_only_then_merges_or_rebuilds(family, ids, merge, tmp_path):
    from edgepeft.api.context import TrainContext
    from edgepeft.train.loop import fit

    peft = pytest.importorskip("peft")
    manager = default_manager()
    lora = manager.techniques.get("lora")
    technique = lora(lora.Options(merge=merge))
    data = _tiny_task(ids)
    ctx = TrainContext(data=data, teacher=None, batch_size=8, seed=0)
    torch.manual_seed(0)
    base = family().build(family.Options(), (24,), 2)
    frozen = base.model.base_model.encoder.layer[3].attention.self.query.weight.detach().clone()
    adapted = technique.adapt(base, ctx)
    history = fit(adapted, ctx, phase="teacher", epochs=3, lr=5e-3, techniques=[technique]).history
    result = technique.compress(adapted, ctx)
    assert result.report["trainable_share"] < 0.05 and result.report["total_parameters"] > 22_000_000
    outputs = predict(result.model, ids)
    for name, content in result.files.items():  # the adapters alone, loaded by peft onto the pretrained model
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(content)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < 2_000_000
    torch.manual_seed(1)  # another classification head: the adapter brings its own
    fresh = peft.PeftModel.from_pretrained(family().build(family.Options(), (24,), 2), tmp_path / "adapter")
    np.testing.assert_allclose(predict(fresh.get_base_model(), ids), outputs, atol=1e-4)
    if merge:
        assert result.record is None and set(result.model.state_dict()) == set(base.state_dict())
        merged = result.model.model.base_model.encoder.layer[3].attention.self.query.weight
        assert not torch.equal(merged, frozen)  # the adapter's update is folded in
    else:
        rebuilt = lora.rebuild(family().build(family.Options(pretrained=False), (24,), 2), result.record)
        rebuilt.load_state_dict(result.model.state_dict())
        np.testing.assert_allclose(predict(rebuilt, ids), outputs, atol=1e-5)
        onnx = manager.backends.get("onnx")()  # the adapters stay in the graph, called as the plain model
        runner = onnx.load(
            onnx.export(rebuilt.eval(), ids[:2], tmp_path, edgepeft.ExportOptions()), edgepeft.ExportOptions()
        )
        np.testing.assert_allclose(runner(ids), outputs, atol=1e-4)
    assert history[-1]["loss"] < history[0]["loss"]


def test_lora_names_layers_it_cannot_adapt(family):
    from edgepeft.api.context import TrainContext

    lora = default_manager().techniques.get("lora")
    model = family().build(family.Options(layers=[0]), (24,), 2)
    ctx = TrainContext(data=None, teacher=None, batch_size=8, seed=0)
    with pytest.raises(edgepeft.ConfigError, match="lora cannot adapt the model"):
        lora(lora.Options(targets=["no_such_layer"])).adapt(model, ctx)


def test_vocabulary_pruning_keeps_the_train_tokens_exactly_and_maps_the_rest_to_unknown(family, ids, tmp_path):
    import dataclasses

    from edgepeft_hf.model_folder import model_folder

    from edgepeft.api.context import TrainContext

    manager = default_manager()
    data = dataclasses.replace(
        _tiny_task(ids), preprocessing={"tokenizer_folder": str(model_folder("all-minilm-l6-v2"))}
    )
    model = family().build(family.Options(layers=[0]), (24,), 2).eval()
    before = predict(model, ids)
    unseen = ids.copy()
    unseen[0, 1] = 7592  # "hello": not in the train split's texts
    as_unknown = unseen.copy()
    as_unknown[0, 1] = 100  # [UNK]
    expected_unseen = predict(model, as_unknown)
    prune = manager.techniques.get("prune-vocab")
    result = prune(prune.Options()).adapt(model, TrainContext(data=data, teacher=None, batch_size=8, seed=0))
    assert result.report["vocabulary_before"] == 30522 and result.report["vocabulary_after"] < 40
    assert result.report["positions_after"] == 24 and result.model.model.config.max_position_embeddings == 24
    assert result.report["parameters_removed"] > 11_000_000 + (512 - 24) * 384
    np.testing.assert_allclose(predict(result.model, ids), before, atol=1e-5)
    np.testing.assert_allclose(predict(result.model, unseen), expected_unseen, atol=1e-5)
    rebuilt = prune.rebuild(family().build(family.Options(layers=[0], pretrained=False), (24,), 2), result.record)
    rebuilt.load_state_dict(result.model.state_dict())
    np.testing.assert_allclose(predict(rebuilt, unseen), expected_unseen, atol=1e-5)
    onnx = manager.backends.get("onnx")()
    runner = onnx.load(
        onnx.export(rebuilt.eval(), ids[:2], tmp_path, edgepeft.ExportOptions()), edgepeft.ExportOptions()
    )
    np.testing.assert_allclose(runner(unseen), expected_unseen, atol=1e-4)


def test_factorized_embeddings_start_from_the_truncated_svd_and_rebuild(family, ids, tmp_path):
    from edgepeft.api.context import TrainContext

    model = family().build(family.Options(layers=[0]), (24,), 2).eval()
    table = model.model.get_input_embeddings().weight.detach().clone()
    factorize = default_manager().techniques.get("factorize-embeddings")
    result = factorize(factorize.Options(rank=32)).adapt(
        model, TrainContext(data=None, teacher=None, batch_size=8, seed=0)
    )
    singular = np.linalg.svd(table.numpy(), compute_uv=False)
    assert result.report["svd_energy_kept"] == pytest.approx((singular[:32] ** 2).sum() / (singular**2).sum(), rel=1e-4)
    assert result.report["parameters_removed"] == 30522 * 384 - (30522 * 32 + 32 * 384)
    embedding = result.model.model.get_input_embeddings()
    u, s, vh = torch.linalg.svd(table, full_matrices=False)
    token = torch.tensor([2023, 3185])
    np.testing.assert_allclose(embedding(token).detach(), ((u[:, :32] * s[:32]) @ vh[:32])[token], atol=1e-4)
    rebuilt = factorize.rebuild(family().build(family.Options(layers=[0], pretrained=False), (24,), 2), result.record)
    rebuilt.load_state_dict(result.model.state_dict())
    outputs = predict(result.model, ids)
    np.testing.assert_allclose(predict(rebuilt, ids), outputs, atol=1e-5)
    onnx = default_manager().backends.get("onnx")()
    runner = onnx.load(
        onnx.export(rebuilt.eval(), ids[:2], tmp_path, edgepeft.ExportOptions()), edgepeft.ExportOptions()
    )
    np.testing.assert_allclose(runner(ids), outputs, atol=1e-4)
    with pytest.raises(edgepeft.ConfigError, match="rank 384 does not factorize a 384-wide embedding"):
        factorize(factorize.Options(rank=384)).adapt(model, TrainContext(data=None, teacher=None, batch_size=8, seed=0))


def test_tokenizer_and_model_must_agree(family):
    import dataclasses

    from edgepeft_hf.model_folder import model_folder

    folder = str(model_folder("all-minilm-l6-v2"))

    def task(length: int, pad: int) -> edgepeft.TaskData:
        ids = np.zeros((4, length), np.float32)
        return dataclasses.replace(_tiny_task(ids), preprocessing={"tokenizer_folder": folder, "pad_token_id": pad})

    with pytest.raises(edgepeft.ConfigError, match="pads with id 3, the model masks id 0; rows of 600 tokens exceed"):
        family().check_data(family.Options(), task(600, 3))
    family().check_data(family.Options(), task(64, 0))


def test_a_local_folder_is_kept_by_absolute_path(family, tmp_path, monkeypatch):
    from edgepeft_hf.model_folder import model_folder

    (tmp_path / "mini").symlink_to(model_folder("all-minilm-l6-v2"))
    monkeypatch.chdir(tmp_path)
    options = family.Options(path="mini")
    assert options.path == str(model_folder("all-minilm-l6-v2").resolve())
    assert family.Options(path="all-minilm-l6-v2").path == "all-minilm-l6-v2"


def test_mean_pooling_averages_the_real_tokens_and_exports(family, ids, tmp_path):
    model = family().build(family.Options(layers=[0], pooling="mean"), (24,), 2).eval()
    x = torch.from_numpy(ids).long()
    mask = (x != 0).long()
    with torch.no_grad():
        states = model.model.base_model(input_ids=x, attention_mask=mask).last_hidden_state
        mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        pooler = model.model.base_model.pooler
        expected = model.model.classifier(pooler.activation(pooler.dense(mean)))
    outputs = predict(model, ids)
    np.testing.assert_allclose(outputs, expected.numpy(), atol=1e-5)
    onnx = default_manager().backends.get("onnx")()
    runner = onnx.load(onnx.export(model, ids[:2], tmp_path, edgepeft.ExportOptions()), edgepeft.ExportOptions())
    np.testing.assert_allclose(runner(ids), outputs, atol=1e-4)


def test_pruning_a_pruned_vocabulary_keeps_the_right_rows(family, ids):
    model = family().build(family.Options(layers=[0]), (24,), 2).eval()
    before = predict(model, ids)
    used = sorted(set(np.unique(ids).astype(int).tolist()) | {100})
    model.prune_vocabulary(sorted(set(used) | set(range(1000, 1100))), 100)  # wider, then cut to what is used
    model.prune_vocabulary(used, 100)
    assert model.model.get_input_embeddings().num_embeddings == len(used)
    np.testing.assert_allclose(predict(model, ids), before, atol=1e-5)


def test_token_ids_beyond_the_vocabulary_are_refused(family):
    import dataclasses

    from edgepeft_hf.model_folder import model_folder

    task = _tiny_task(np.full((4, 16), 40_000, np.float32))
    data = dataclasses.replace(
        task, preprocessing={"tokenizer_folder": str(model_folder("all-minilm-l6-v2")), "pad_token_id": 0}
    )
    with pytest.raises(edgepeft.ConfigError, match="token id 40,000 is beyond the model's vocabulary of 30,522"):
        family().check_data(family.Options(), data)
