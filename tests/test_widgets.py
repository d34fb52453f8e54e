"""The alignment explorer, driven from Python: set a widget's value, check what it drew."""

from __future__ import annotations

import numpy as np
import pytest

from sellakit.viz.widgets import AlignmentExplorer, ExplorerData, nearest_items


@pytest.fixture()
def explorer():
    rng = np.random.default_rng(0)
    n = 30
    titles = np.array([""] + [f"Movie {i}" for i in range(1, n)], dtype=object)
    base = rng.normal(size=(n, 6))
    twin = base.copy()
    twin[2] = twin[1] + 1e-3  # Movie 2 is Movie 1's nearest neighbour in the LLM space
    known = np.ones(n, dtype=bool)
    data = ExplorerData(titles=titles, spaces={"CF": base, "LLM": twin, "aligned": base},
                        histories={1: [3, 4], 2: [5]}, user_scores=lambda uid: base @ base[uid],
                        maps={0: rng.normal(size=(10, 2)), 5: rng.normal(size=(10, 2))},
                        reference_map=rng.normal(size=(10, 2)), map_iids=np.arange(1, 11),
                        known=known, held_out={1: [5, 6]}, cold_users={2})
    return AlignmentExplorer(data, k=3)


def test_nearest_items_excludes_itself_and_padding():
    space = np.array([[0.0, 0.0], [1.0, 0.0], [0.9, 0.1], [-1.0, 0.0]])
    near = nearest_items(space, 1, k=2)
    assert near.iid.tolist() == [2, 3]


def test_search_shows_neighbours_in_three_spaces(explorer):
    explorer.search.value = "Movie 1"
    table = explorer.last["neighbours"]
    assert list(table.columns) == ["CF", "LLM", "aligned"]
    assert table.loc[1, "LLM"].startswith("Movie 2 ")
    assert "sellakit-neighbours" in explorer.item_out.value and "Movie 2 " in explorer.item_out.value
    explorer.search.value = "Movie 7"
    assert not explorer.last["neighbours"].loc[1, "LLM"].startswith("Movie 2 ")


def test_user_view_hides_history(explorer):
    explorer.user.value = 2
    view = explorer.last["user"]
    assert view["history"] == ["Movie 5"] and "Movie 5" not in view["top"]
    assert len(view["top"]) == 3


def test_user_view_flags_cold_users_and_shows_later_likes(explorer):
    labels = [label for label, _ in explorer.user.options]
    assert labels == ["1", "2 (cold)"]
    explorer.user.value = 2
    assert explorer.last["user"]["cold"] and "cold user" in explorer.user_out.value
    explorer.user.value = 1
    view = explorer.last["user"]
    assert not view["cold"] and view["held_out"] == ["Movie 5", "Movie 6"]
    assert "liked later (held out)" in explorer.user_out.value
    scores = explorer.data.user_scores(1)
    scores[[0, 3, 4]] = -np.inf
    top = set(np.argsort(-scores)[:3].tolist())
    assert view["hits"] == len(top & {5, 6})


def test_epoch_slider_redraws_the_map(explorer):
    first = explorer.last["map"]
    explorer.epoch.value = 0
    second = explorer.last["map"]
    assert "epoch 0" in second.layout.title.text and "epoch 5" in first.layout.title.text
    assert not np.allclose(first.data[1].x, second.data[1].x)


def test_query_explorer_shows_filtered_ranks_and_the_true_tails_rank():
    """Notebook 07's widget ranks as the lesson measures: the query's other known tail (1, a
    training fact) leaves the ranking, so the true tail 2 is first; unticked, it is second."""
    import torch

    from sellakit.kg.data import KG, MultiSourceKG
    from sellakit.viz.kg import QueryExplorer

    labels = [f"http://x/e{i}" for i in range(4)]
    kg = KG("a", 4, np.array([[0, 0, 1]]), np.zeros((0, 3), np.int64), np.array([[0, 0, 2]]),
            entity_labels=labels)
    ms = MultiSourceKG("toy", {"a": kg}, 1, {})

    def scorer(heads, relations):
        return torch.tensor([[0.0, 3.0, 2.0, 1.0]]).expand(len(heads), 4)

    explorer = QueryExplorer(ms, "a", {"model": scorer}, k=2)
    assert explorer.ranks == {"model": 1.0} and explorer.shown["model"] == ["e2", "e3"]
    assert "rank: <b>1</b>" in explorer.view.value and "filtered" in explorer.view.value
    explorer.filtered.value = False
    assert explorer.ranks == {"model": 2.0} and explorer.shown["model"] == ["e1", "e2"]
    assert "raw" in explorer.view.value
