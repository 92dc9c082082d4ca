"""Forgetting, learning, CKA divergence and invariance flow read off PAIR_SIMILARITY tables."""

import itertools
import re

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from finetune_invariance import tables
from finetune_invariance.inversion import invert
from finetune_invariance.stir import pair_similarity
from finetune_invariance.finetuning_metrics import flow_matrix, invariance_flow, layer_metrics, summarize_over_seeds


def handmade_pair_table(stir_pf, stir_fp, cka_pf, seed=0):
    """PAIR_SIMILARITY rows from L x L arrays: stir_pf[i, j] = STIR(f_j|p_i), stir_fp[i, j] = STIR(p_j|f_i)."""
    rows = []
    size = len(stir_pf)
    for i, j in itertools.product(range(size), repeat=2):
        rows.append(
            dict(
                reference="p",
                target="f",
                seed=seed,
                reference_layer=i,
                target_layer=j,
                stir=stir_pf[i, j],
                cka=cka_pf[i, j],
                n_images=10,
            )
        )
        rows.append(
            dict(
                reference="f",
                target="p",
                seed=seed,
                reference_layer=i,
                target_layer=j,
                stir=stir_fp[i, j],
                cka=cka_pf[j, i],
                n_images=10,
            )
        )
    return tables.conform(pd.DataFrame(rows), tables.PAIR_SIMILARITY)


@pytest.fixture
def arrays():
    g = np.random.default_rng(0)
    return g.uniform(size=(3, 3)), g.uniform(size=(3, 3)), g.uniform(size=(3, 3))


def test_layer_metrics_are_one_minus_the_diagonals(arrays):
    stir_pf, stir_fp, cka_pf = arrays
    out = layer_metrics(handmade_pair_table(stir_pf, stir_fp, cka_pf), pretrained="p", finetuned="f")
    assert out.equals(tables.conform(out, tables.LAYER_METRICS))
    assert len(out) == 9
    for metric, source in [("forgetting", stir_pf), ("learning", stir_fp), ("cka_divergence", cka_pf)]:
        rows = out[out["metric"] == metric].sort_values("layer")
        np.testing.assert_allclose(rows["value"], 1 - np.diag(source), rtol=0, atol=1e-15)
        assert rows["layer"].tolist() == [0, 1, 2]


def test_invariance_flow_subtracts_the_row_diagonal(arrays):
    stir_pf, stir_fp, cka_pf = arrays
    out = invariance_flow(handmade_pair_table(stir_pf, stir_fp, cka_pf), pretrained="p", finetuned="f")
    assert out.equals(tables.conform(out, tables.INVARIANCE_FLOW))
    flow = out.pivot(index="pretrained_layer", columns="finetuned_layer", values="flow").to_numpy()
    np.testing.assert_allclose(flow, stir_pf - np.diag(stir_pf)[:, None], rtol=0, atol=1e-15)


def test_model_against_itself_forgetting_equals_learning_and_flow_diagonal_is_zero():
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0
    )
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    inversions = invert(vit, images, seed=0, iterations=3, progress=False)
    pair = pair_similarity(vit, vit, images, inversions, inversions, names=("p", "f"))
    metrics = layer_metrics(pair, pretrained="p", finetuned="f")
    forgetting = metrics[metrics["metric"] == "forgetting"]["value"].to_numpy()
    learning = metrics[metrics["metric"] == "learning"]["value"].to_numpy()
    np.testing.assert_array_equal(forgetting, learning)
    assert (forgetting > 0).all()  # three steps do not reach a perfect inversion
    np.testing.assert_allclose(metrics[metrics["metric"] == "cka_divergence"]["value"], 0.0, atol=1e-12)
    flow = invariance_flow(pair, pretrained="p", finetuned="f")
    diagonal = flow[flow["pretrained_layer"] == flow["finetuned_layer"]]["flow"]
    assert (diagonal == 0.0).all() and len(diagonal) == 3


def test_metrics_are_per_seed(arrays):
    stir_pf, stir_fp, cka_pf = arrays
    both = pd.concat(
        [
            handmade_pair_table(stir_pf, stir_fp, cka_pf, seed=0),
            handmade_pair_table(stir_pf / 2, stir_fp, cka_pf, seed=7),
        ]
    )
    out = layer_metrics(both, "p", "f")
    forgetting = out[out["metric"] == "forgetting"].set_index(["seed", "layer"])["value"]
    assert forgetting[(7, 1)] == pytest.approx(1 - stir_pf[1, 1] / 2)
    assert forgetting[(0, 1)] == pytest.approx(1 - stir_pf[1, 1])


def test_summarize_over_seeds_gives_mean_sample_std_and_count():
    df = pd.DataFrame(
        {
            "pretrained": "p",
            "finetuned": "f",
            "seed": [0, 1, 2, 0],
            "layer": [0, 0, 0, 1],
            "metric": "forgetting",
            "value": [0.1, 0.4, 0.7, 0.3],
        }
    )
    out = summarize_over_seeds(df).set_index("layer")
    assert list(out.columns) == ["pretrained", "finetuned", "metric", *tables.SEED_SUMMARY_COLUMNS]
    assert out.loc[0, "mean"] == pytest.approx(0.4)
    assert out.loc[0, "std"] == pytest.approx(np.std([0.1, 0.4, 0.7], ddof=1))
    assert out.loc[0, "n_seeds"] == 3
    assert np.isnan(out.loc[1, "std"]) and out.loc[1, "n_seeds"] == 1


def test_a_repeated_row_is_refused_rather_than_counted_as_a_second_seed(arrays):
    pair = handmade_pair_table(*arrays)
    twice = pd.concat([pair, pair], ignore_index=True)  # the same seed's table read twice
    for metrics in (layer_metrics, invariance_flow):
        with pytest.raises(tables.SchemaError, match=r"18 pair_similarity rows share the same \['reference', 'target', 'seed', 'reference_layer', 'target_layer'\]"):
            metrics(twice, "p", "f")
    metrics = layer_metrics(pair, "p", "f")
    with pytest.raises(tables.SchemaError, match=r"18 rows share the same \['pretrained', 'finetuned', 'layer', 'metric', 'seed'\].*count as another seed"):
        summarize_over_seeds(pd.concat([metrics, metrics]))  # would give n_seeds 2, std 0
    with pytest.raises(tables.SchemaError, match=r"18 rows of table 'layer_metrics' share the same .*one row per \(pretrained model"):
        tables.conform(pd.concat([metrics, metrics]), tables.LAYER_METRICS)


def test_errors_name_the_missing_models_and_columns(arrays):
    pair = handmade_pair_table(*arrays)
    with pytest.raises(ValueError, match="no rows with reference='q' and target='f'"):
        layer_metrics(pair, pretrained="q", finetuned="f")
    with pytest.raises(ValueError, match="column 'flow' is not in the table"):
        summarize_over_seeds(pair, value="flow")
    off_diagonal = pair[pair["target_layer"] != 1]
    with pytest.raises(ValueError, match="no STIR"):
        invariance_flow(off_diagonal, "p", "f")


def handmade_flow_table(per_seed: dict[int, np.ndarray], pretrained="p", finetuned="f") -> pd.DataFrame:
    """INVARIANCE_FLOW rows from one L x L array per seed: flow[i, j] of pretrained layer i, finetuned layer j."""
    rows = [
        dict(pretrained=pretrained, finetuned=finetuned, seed=seed, pretrained_layer=i, finetuned_layer=j, flow=m[i, j])
        for seed, m in per_seed.items()
        for i, j in itertools.product(range(len(m)), repeat=2)
    ]
    return tables.conform(pd.DataFrame(rows), tables.INVARIANCE_FLOW)


def test_flow_matrix_is_the_seed_mean_with_pretrained_rows_and_finetuned_columns():
    seed0 = np.array([[0.0, 0.1, 0.2], [0.3, 0.0, 0.5], [0.6, 0.7, 0.0]])
    seed7 = np.array([[0.0, 0.3, 0.0], [0.1, 0.0, 0.1], [0.0, -0.1, 0.0]])
    table = handmade_flow_table({0: seed0, 7: seed7}).sample(frac=1.0, random_state=0)  # row order is irrelevant
    table["dataset"] = "cifar10"  # columns beyond the schema (the study's context) are ignored
    matrix = flow_matrix(table)
    expected = np.array([[0.0, 0.2, 0.1], [0.2, 0.0, 0.3], [0.3, 0.3, 0.0]])
    np.testing.assert_allclose(matrix.to_numpy(), expected, rtol=0, atol=1e-15)
    assert matrix.index.tolist() == [0, 1, 2] and matrix.columns.tolist() == [0, 1, 2]
    assert (matrix.index.name, matrix.columns.name) == ("pretrained_layer", "finetuned_layer")
    assert matrix.loc[2, 0] == pytest.approx(0.3)  # row = pretrained layer 2, column = finetuned layer 0


def test_flow_matrix_refuses_tables_it_cannot_average_honestly():
    square = np.zeros((3, 3))
    both = handmade_flow_table({0: square, 1: square})
    two_pairs = pd.concat([both, handmade_flow_table({0: square}, finetuned="g")])
    pairs = r"exactly one \(pretrained, finetuned\) pair, got \[\('p', 'f'\), \('p', 'g'\)\]"
    with pytest.raises(ValueError, match=pairs):
        flow_matrix(two_pairs)
    with pytest.raises(ValueError, match=r"exactly one .* got \[\]"):
        flow_matrix(both.iloc[:0])
    lacking = both[~((both["seed"] == 1) & (both["pretrained_layer"] == 2) & (both["finetuned_layer"] == 1))]
    with pytest.raises(ValueError, match=r"3x3 flow matrix lacks 1 cells \(seed, i, j\): \[\(1, 2, 1\)\]"):
        flow_matrix(lacking)
    repeated = "2 flow rows share the same ['seed', 'pretrained_layer', 'finetuned_layer'], e.g. {'seed': 0, "
    with pytest.raises(ValueError, match=re.escape(repeated + "'pretrained_layer': 1, 'finetuned_layer': 1}")):
        flow_matrix(pd.concat([both, both.iloc[[4]]]))
    undefined = both.copy()
    undefined.loc[5, "flow"] = np.nan
    with pytest.raises(ValueError, match=r"flow is NaN in 1 rows, \(seed, i, j\) \[\(0, 1, 2\)\]"):
        flow_matrix(undefined)
    with pytest.raises(ValueError, match="column 'flow' is not in the table"):
        flow_matrix(both.drop(columns="flow"))
