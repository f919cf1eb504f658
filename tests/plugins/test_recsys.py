"""The recsys model family on a movielens-shaped signature: building, compression options, and exports."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from edgepeft_recsys.plan import collision_rate

import edgepeft
from edgepeft import Field, Head, Signature
from edgepeft.host.manager import default_manager

torch = pytest.importorskip("torch")

IDS = [("user", 944), ("item", 1683), ("age", 8), ("gender", 3), ("occupation", 22), ("zip", 12), ("decade", 10)]
GENRES = 19
SIGNATURE = Signature(
    input_shape=(len(IDS) + GENRES,),
    heads=(Head("rating", "regression"), Head("like", "binary")),
    fields=(*(Field(name, n) for name, n in IDS), Field("genre", GENRES, multi_hot=True)),
)
STUDENT = {
    "dim": 16,
    "ranks": {"user": 8, "item": 8},
    "keep_ids": {"item": 800},
    "hash_buckets": {"item": 200},
    "hidden": [64, 32],
}


def inputs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.integers(0, cardinality, n) for _, cardinality in IDS], axis=1)
    return np.concatenate([ids, rng.random((n, GENRES)) < 0.15], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def family():
    return default_manager().models.get("recsys")


def build(family, signature: Signature = SIGNATURE, **options):
    torch.manual_seed(0)
    return family().build_for(family.Options(**options), signature).eval()


def predict(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_outputs_one_column_per_head_with_the_regression_bias_set(family):
    model = build(family, regression_init=3.0)
    out = predict(model, inputs(50))
    assert out.shape == (50, 2) and out.dtype == np.float32
    assert model.heads.bias.tolist()[0] == 3.0
    wide = Signature(
        SIGNATURE.input_shape, (*SIGNATURE.heads, Head("genre", "classification", ("a", "b", "c"))), SIGNATURE.fields
    )
    assert predict(build(family, wide), inputs(5)).shape == (5, 5)


def test_families_without_fields_are_refused(family):
    with pytest.raises(edgepeft.ConfigError, match=r"categorical fields.*movielens-100k"):
        family().build(family.Options(), (26,), 10)
    with pytest.raises(edgepeft.ConfigError, match="categorical fields"):
        family().build_for(family.Options(), Signature((26,), SIGNATURE.heads))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dims": {"usr": 8}}, r"dims names unknown fields \['usr'\].*'user', 'item'"),
        ({"share": [["user", "item"]], "dims": {"item": 8}}, r"\['user', 'item'\] share a table.*widths"),
        ({"share": [["user", "item"], ["item", "zip"]]}, r"\['item'\] in more than one group"),
        ({"keep_ids": {"item": 10}}, "must name the same fields"),
        ({"keep_ids": {"genre": 2}, "hash_buckets": {"genre": 2}}, r"multi-hot fields \['genre'\] cannot be hashed"),
    ],
)
def test_invalid_options_are_config_errors(family, options, message):
    with pytest.raises(edgepeft.ConfigError, match=message):
        build(family, **options)


def test_ids_are_clamped_and_rare_ids_hashed(family):
    model = build(family, **STUDENT)
    x = np.repeat(inputs(1), 8, axis=0)
    x[:, 1] = [5, 6, 800, 1000, 1682, 1682 + 1000, -3, 0]  # 800 and 1000 share row 800; 2682 -> 1682 -> row 882
    out = predict(model, x)
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[2], out[4])
    for same, other in ((2, 3), (4, 5), (6, 7)):
        np.testing.assert_allclose(out[same], out[other], rtol=0, atol=1e-6)


def test_collision_rate_matches_counting_every_bucket():
    for cardinality, keep, buckets in itertools.product((1, 10, 37), (1, 3, 12), (1, 4, 7)):
        rows = [i if i < keep else keep + (i - keep) % buckets for i in range(cardinality)]
        sizes = {r: rows.count(r) for r in rows}
        counts = [float(i % 5 + 1) for i in range(cardinality)]
        colliding = [i for i in range(cardinality) if sizes[rows[i]] > 1]
        rate = collision_rate(cardinality, keep, buckets, counts)
        assert rate["rows"] == min(cardinality, keep + buckets)
        assert rate["colliding_ids"] == len(colliding)
        assert rate["shared_rows"] == sum(1 for size in sizes.values() if size > 1)
        assert rate["collision_share"] == pytest.approx(len(colliding) / cardinality)
        assert rate["weighted_share"] == pytest.approx(sum(counts[i] for i in colliding) / sum(counts))
    assert collision_rate(1683, 800, 200)["colliding_ids"] == 883


def test_compression_options_shrink_the_tables(family):
    report = {r["field"]: r for r in build(family, **STUDENT, rank=8).embedding_report()}
    assert (report["item"]["rows"], report["item"]["rank"], report["item"]["hashed_ids"]) == (1000, 8, 883)
    assert report["item"]["parameters"] == 1000 * 8 + 8 * 16
    assert report["gender"]["rank"] is None  # a rank-8 factorisation of 3 rows would be larger
    assert report["genre"]["rank"] == 8
    shared = build(family, share=[["age", "decade"]])
    report = {r["field"]: r for r in shared.embedding_report()}
    assert report["decade"]["table"] == "age" and report["age"]["rows"] == 10
    assert report["age"]["parameters"] == 10 * 32 + 32 and report["decade"]["parameters"] == 32
    for model in (shared, build(family, **STUDENT)):
        embedding = [p for name, p in model.named_parameters() if not name.startswith(("tower", "heads"))]
        assert sum(r["parameters"] for r in model.embedding_report()) == sum(p.numel() for p in embedding)


def test_shared_fields_stay_distinct(family):
    model = build(family, share=[["age", "decade"]])
    x = inputs(1)
    x[0, 2], x[0, 6] = 3, 5
    swapped = x.copy()
    swapped[0, 2], swapped[0, 6] = 5, 3
    assert not np.allclose(predict(model, x), predict(model, swapped))


@pytest.fixture(scope="module")
def student(family):
    return build(family, **STUDENT)


@pytest.mark.parametrize(("backend", "precision"), [("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8")])
def test_exports_match_pytorch(student, backend, precision, tmp_path):
    manager = default_manager()
    cls = manager.backends.get(backend)
    if cls.unavailable_reason():
        pytest.skip(cls.unavailable_reason())
    x = inputs(300, seed=1)
    options = edgepeft.ExportOptions(precision=precision, batch_size=100, calibration=inputs(1000, seed=2))
    artifact = cls().export(student, x[:100], tmp_path, options)
    runner = cls().load(artifact, edgepeft.ExportOptions())
    diff = np.abs(np.concatenate([runner(x[i : i + 100]) for i in range(0, 300, 100)]) - predict(student, x))
    if precision == "fp32":
        assert diff.max() < 1e-4
        return
    assert np.quantile(diff, 0.99) < 0.05 and diff.max() < 0.2
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(artifact.path)).get_tensor_details()
    tables = [d for d in details if tuple(d["shape"]) in ((944, 8), (1000, 8))]
    assert len(tables) == 2 and all(d["dtype"] == np.int8 for d in tables)
    assert artifact.inputs[0].dtype == "float32"  # ids must not pass through an int8 input
