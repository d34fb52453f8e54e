"""An ipywidgets explorer of the CF, LLM and aligned spaces (notebook 04).

* **Item search:** type a title; see its nearest neighbours (cosine) in the CF space, the LLM's
  semantic space and the aligned space (``P(e_i)``) side by side.
* **User:** pick a user; see their liked history, the items the aligned MF scores highest and,
  beside them, what the user went on to like in test (held out). Cold users (absent from
  train, so MF has no vector for them) are flagged in the list and in the view.
* **Epoch slider:** redraws the UMAP map of the projected CF vectors at that saved epoch, in the
  frame of the LLM space (grey), so you see CF items travel towards their titles' meaning.

Each control's callback is a named method that returns what it drew (a frame or a figure) and
keeps it in ``explorer.last``, so tests can set a widget's value and check the result without a
browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

__all__ = ["ExplorerData", "AlignmentExplorer", "nearest_items"]


@dataclass
class ExplorerData:
    """What the explorer shows. Arrays are indexed by item id (row 0 = padding).

    Attributes:
        titles: item titles by iid.
        spaces: ``{"CF": ..., "LLM": ..., "aligned": ...}``, each (n_items, d).
        histories: liked iids per user id.
        user_scores: callable ``uid -> scores over all iids`` (the aligned MF).
        maps: saved epoch -> (len(map_iids), 2) coordinates of the projected CF vectors.
        reference_map: (len(map_iids), 2) coordinates of the LLM vectors, same frame.
        map_iids: the items drawn on the map.
        known: mask over iids of items seen in train (neighbours are searched among them).
        held_out: per user, the iids they liked later (test rows), shown beside the top items.
        cold_users: users absent from train: the model's scores for them are noise.
    """

    titles: np.ndarray
    spaces: dict[str, np.ndarray]
    histories: dict[int, list[int]]
    user_scores: callable
    maps: dict[int, np.ndarray]
    reference_map: np.ndarray
    map_iids: np.ndarray
    known: np.ndarray
    held_out: dict[int, list[int]] = field(default_factory=dict)
    cold_users: set[int] = field(default_factory=set)


def nearest_items(space: np.ndarray, iid: int, k: int = 8, candidates: np.ndarray | None = None
                  ) -> pd.DataFrame:
    """The ``k`` nearest items to ``iid`` by cosine in ``space`` (itself excluded)."""
    unit = space / np.maximum(np.linalg.norm(space, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit[iid]
    sims[iid] = -np.inf
    if candidates is not None:
        sims[~candidates] = -np.inf
    sims[0] = -np.inf
    top = np.argsort(-sims)[:k]
    return pd.DataFrame({"iid": top, "cosine": sims[top].round(3)})


class AlignmentExplorer:
    """Build with :class:`ExplorerData`; show with ``display(explorer.widget)``."""

    def __init__(self, data: ExplorerData, k: int = 8):
        self.data, self.k, self.last = data, k, {}
        known_titles = sorted({data.titles[i] for i in np.flatnonzero(data.known) if i})
        self.index = {t: i for i, t in enumerate(data.titles) if t}
        self.search = widgets.Combobox(placeholder="Search a movie title", options=known_titles,
                                       ensure_option=True, description="Item",
                                       layout={"width": "460px"})
        self.user = widgets.Dropdown(options=[(f"{u} (cold)" if u in data.cold_users else
                                               str(u), u) for u in sorted(data.histories)],
                                     description="User")
        epochs = sorted(data.maps)
        self.epoch = widgets.SelectionSlider(options=epochs, value=epochs[-1],
                                             description="Epoch", continuous_update=False)
        # Tables go into HTML widgets (a value, no output capture); only the plotly map needs an
        # Output widget, since a figure is rendered by the front end's plotly renderer.
        self.item_out, self.user_out = widgets.HTML(), widgets.HTML()
        self.map_out = widgets.Output()
        self.search.observe(lambda change: self.show_neighbours(change["new"]), names="value")
        self.user.observe(lambda change: self.show_user(change["new"]), names="value")
        self.epoch.observe(lambda change: self.show_map(change["new"]), names="value")
        self.widget = widgets.VBox([
            widgets.HTML("<h4>Nearest neighbours in the three spaces</h4>"), self.search,
            self.item_out,
            widgets.HTML("<h4>A user: history and top-scored items (aligned MF)</h4>"), self.user,
            self.user_out,
            widgets.HTML("<h4>Projected CF items over training (grey: LLM space)</h4>"),
            self.epoch, self.map_out,
        ])
        self.show_user(self.user.value)
        self.show_map(self.epoch.value)

    # -- callbacks ------------------------------------------------------------------------

    def show_neighbours(self, title: str) -> pd.DataFrame | None:
        """Side-by-side neighbour table of ``title`` (ignored until it names a known item)."""
        if title not in self.index:
            return None
        iid = self.index[title]
        columns = {}
        for name, space in self.data.spaces.items():
            near = nearest_items(space, iid, self.k, candidates=self.data.known)
            columns[name] = [f"{self.data.titles[i]} ({c:.2f})" for i, c in
                             zip(near.iid, near.cosine)]
        table = pd.DataFrame(columns, index=range(1, self.k + 1))
        self.last["neighbours"] = table
        self.item_out.value = f"<b>{title}</b>" + table.to_html(classes="sellakit-neighbours")
        return table

    def show_user(self, uid: int) -> dict:
        """The user's last liked titles, the top-k unseen items by the aligned MF score and the
        titles they liked later (held out, ✓ where a top item is one); cold users flagged."""
        history = self.data.histories.get(uid, [])
        scores = np.asarray(self.data.user_scores(uid), dtype=float).copy()
        scores[0] = -np.inf
        scores[list(history)] = -np.inf
        scores[~self.data.known] = -np.inf
        top = np.argsort(-scores)[: self.k]
        later = set(self.data.held_out.get(uid, []))
        view = {"history": [self.data.titles[i] for i in history[-10:]],
                "top": [self.data.titles[i] for i in top],
                "held_out": [self.data.titles[i] for i in sorted(later)],
                "hits": int(sum(int(i) in later for i in top)),
                "cold": uid in self.data.cold_users}
        self.last["user"] = view
        frame = pd.DataFrame({"last liked": pd.Series(view["history"]),
                              "top-scored (unseen)": pd.Series(
                                  [f"{t} ✓" if int(i) in later else t
                                   for i, t in zip(top, view["top"])]),
                              "liked later (held out)": pd.Series(view["held_out"][:self.k])})
        note = (" — <b>cold user</b>: not in train, so MF has no vector for them and these "
                "scores are noise" if view["cold"] else
                f" — {view['hits']} of the top {self.k} liked later")
        self.user_out.value = f"<b>user {uid}</b>{note}" + \
            frame.fillna("").to_html(classes="sellakit-user")
        return view

    def show_map(self, epoch: int) -> go.Figure:
        """The map at ``epoch``: LLM points in grey, projected CF points coloured."""
        coords, ref = self.data.maps[epoch], self.data.reference_map
        names = [self.data.titles[i] for i in self.data.map_iids]
        fig = go.Figure([
            go.Scattergl(x=ref[:, 0], y=ref[:, 1], mode="markers", name="LLM (semantic)",
                         text=names, marker={"color": "lightgrey", "size": 5}),
            go.Scattergl(x=coords[:, 0], y=coords[:, 1], mode="markers",
                         name=f"P(CF), epoch {epoch}", text=names,
                         marker={"color": "#E45756", "size": 5, "opacity": 0.7}),
        ])
        fig.update_layout(title=f"Projected CF item vectors at epoch {epoch}", height=480,
                          width=720, margin={"t": 50})
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        self.last["map"] = fig
        self.map_out.outputs = ()
        with self.map_out:
            display(fig)
        return fig
