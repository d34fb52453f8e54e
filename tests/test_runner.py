"""The notebook runner's client: a widget cell must not stall the notebook (notebook 04's hang),
and a kernel that never answers is started once more."""

from __future__ import annotations

from datetime import datetime

import pytest

from sellakit.runner import notebook_client

pytest.importorskip("nbclient")
pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

#: Twenty figures displayed into one Output widget, as the explorer does when its slider moves.
#: With nbclient's own client this test failed 3 of 4 times (the next cell started 57-58 s after
#: the reply, kernel and client idle meanwhile); with :func:`notebook_client` it passed 5 of 5.
CELLS = [
    "import numpy as np, ipywidgets as widgets, plotly.graph_objects as go\n"
    "from IPython.display import display",
    "out = widgets.Output()\n"
    "xy = np.random.default_rng(0).random((3000, 2))\n"
    "for i in range(20):\n"
    "    out.outputs = ()\n"
    "    with out:\n"
    "        display(go.Figure([go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode='markers')]))\n"
    "out",
    "print('next cell')",
]
TIMEOUT = 60


def test_a_cell_that_displays_into_an_output_widget_does_not_stall_the_next():
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = notebook_client(notebook, timeout=TIMEOUT, kernel_name="python3",
                             record_timing=True)
    client.execute()

    def at(cell, key):
        return datetime.fromisoformat(cell.metadata["execution"][key].replace("Z", "+00:00"))

    widget_cell, next_cell = notebook.cells[1], notebook.cells[2]
    gap = at(next_cell, "iopub.execute_input") - at(widget_cell, "shell.execute_reply")
    assert gap.total_seconds() < TIMEOUT / 4, f"the next cell started {gap} after the reply"
    assert next_cell.outputs[0]["text"] == "next cell\n"
    # The figures still reach the saved notebook: the Output widget's state holds the last one.
    states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    outputs = [s["state"]["outputs"] for s in states.values() if s["model_name"] == "OutputModel"]
    assert len(outputs) == 1 and outputs[0][-1]["data"]["application/vnd.plotly.v1+json"]


@pytest.mark.parametrize("silent_starts", [1, 2])
def test_a_kernel_that_never_answers_is_started_once_more(monkeypatch, silent_starts):
    """The first ``silent_starts`` kernels time out as nbclient reports it: one fresh kernel
    runs the notebook; a second silence is raised."""
    import nbformat
    from nbclient import NotebookClient

    started = []
    answering = NotebookClient.async_start_new_kernel_client

    async def silent_at_first(self):
        started.append(self.km)
        if len(started) <= silent_starts:
            await self._async_cleanup_kernel()  # as nbclient does when the wait times out
            raise RuntimeError("Kernel didn't respond in 60 seconds")
        return await answering(self)

    monkeypatch.setattr(NotebookClient, "async_start_new_kernel_client", silent_at_first)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("6 * 7")])
    client = notebook_client(notebook, timeout=TIMEOUT, kernel_name="python3")
    if silent_starts == 2:
        with pytest.raises(RuntimeError, match="didn't respond"):
            client.execute()
        assert len(started) == 2
        return
    client.execute()
    assert len(started) == 2 and started[0] is not started[1]
    assert notebook.cells[0].outputs[0]["data"]["text/plain"] == "42"
