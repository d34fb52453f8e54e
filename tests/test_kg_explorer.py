"""Notebook 08's helpers on the planted split and a GENERATED film KG: each movie's facts and
who shares them, the three-space map, and the movie explorer driven from Python (set a widget's
value, read what it drew)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sellakit.kg.items import FilmFacts


def _film_kg(split):
    """GENERATED: items 1-4 link to films; films 0 and 1 share an actor; film 2's sequel is
    film 3; item 5 has no link."""
    from sellakit.data.ml100k import FilmKG

    items = [key.split(":")[0] for key in split.item_ids[:4]]
    rows = [("f0", "film.film.actor", "a1"), ("f1", "film.film.actor", "a1"),
            ("f0", "film.film.genre", "g1"), ("f2", "film.film.genre", "g2"),
            ("f2", "film.film.sequel", "f3"), ("a1", "film.actor.film", "f0")]
    return FilmKG(pd.DataFrame(rows, columns=["head", "relation", "tail"]),
                  pd.DataFrame({"item": items, "entity": ["f0", "f1", "f2", "f3"]}),
                  source="GENERATED unit-test film KG")


@pytest.fixture()
def facts(small_split):
    return FilmFacts.build(_film_kg(small_split), small_split)


def test_facts_name_the_movies_that_share_them(facts, small_split):
    titles = small_split.item_titles
    assert facts.linked[1:5].all() and not facts.linked[0] and not facts.linked[5:].any()
    first = facts.of(1)
    # the film's own facts only (the actor's inverse fact is not the film's), most shared first
    assert first.relation.tolist() == ["actor", "genre"]
    assert first["shared by"].tolist() == [1, 0] and first["e.g."][0] == titles[2]
    # a tail that is a split movie is shown by its title
    assert facts.of(3).set_index("relation").loc["sequel", "tail"] == titles[4]
    assert facts.of(4).empty and list(facts.of(4).columns)[:2] == ["relation", "tail"]
    assert facts.relation_counts().to_dict() == {"genre": 2, "actor": 2, "sequel": 1}


def _scores(iids=(1, 1, 2, 5), seeds=(7, 8)) -> pd.DataFrame:
    """GENERATED per-row scores in the study's long form: each method a constant per seed."""
    base = {"collm": 0.2, "collm_kg": 0.6, "collm_kg|zero": 0.3, "collm_kg|shuffle": 0.4,
            "tallrec": 0.5}
    frames = [pd.DataFrame({"row": np.arange(len(iids)), "iid": list(iids),
                            "label": [1, 0, 1, 0], "item_cold": [False, False, True, False],
                            "user_cold": False, "method": name, "seed": seed,
                            "score": value + 0.1 * (seed - 7)})
              for name, value in base.items() for seed in seeds]
    return pd.concat(frames, ignore_index=True)


def test_explorer_scores_facts_and_neighbours_follow_the_widgets(facts, small_split):
    from sellakit.viz import KGMovieExplorer

    vectors = np.zeros((small_split.n_items, 3))
    vectors[1:5] = [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.2]]
    known = np.linalg.norm(vectors, axis=1) > 0
    explorer = KGMovieExplorer(facts, vectors, known, _scores(),
                               {"collm_kg": "collm", "text_kg": "tallrec"})
    assert explorer.movie.value == 1  # the most rows first
    assert "(item-cold)" in dict((v, k) for k, v in explorer.movie.options)[2]
    shown = explorer.last
    assert shown["rows"] == 2 and shown["liked"] == 1
    # only the KG methods present; seed-mean scores with the slot, ablated and without it
    row = shown["scores"].set_index("method").loc["collm_kg"]
    assert list(shown["scores"].method) == ["collm_kg"]
    assert row["with <KG_ID>"] == pytest.approx(0.65)
    assert row["<KG_ID> zero"] == pytest.approx(0.35)
    assert row["without <KG_ID>"] == pytest.approx(0.25) and row["that is"] == "collm"
    assert shown["neighbours"].movie.iloc[0] == small_split.item_titles[2]
    assert "sellakit-kg-scores" in explorer.scores_out.value
    assert "sellakit-kg-facts" in explorer.facts_out.value
    explorer.mode.value = "shuffle"
    assert explorer.last["scores"]["<KG_ID> shuffle"][0] == pytest.approx(0.45)
    explorer.movie.value = 5  # no KG link: no neighbours, and it says so
    assert explorer.last["neighbours"].empty and "No KG vector" in explorer.facts_out.value


def test_space_maps_colour_every_panel_alike():
    from sellakit.viz import space_maps

    rng = np.random.default_rng(0)
    coords = {"KG": rng.normal(size=(6, 2)), "CF": rng.normal(size=(6, 2))}
    fig = space_maps(coords, ["a", "b", "a", "a", "b", "b"], [f"m{i}" for i in range(6)], "t")
    assert len(fig.data) == 4 and [t.showlegend for t in fig.data] == [True, True, False, False]
    colours = {(t.name, t.xaxis): t.marker.color for t in fig.data}
    assert colours[("a", "x")] == colours[("a", "x2")] != colours[("b", "x")]
    np.testing.assert_array_equal(fig.data[2].x, coords["CF"][[0, 2, 3], 0])
