"""UMAP frames: transform into the reference frame, cache, Procrustes."""

from __future__ import annotations

import numpy as np

from sellakit.viz.maps import UMAPSettings, fit_frame, procrustes_onto


def test_procrustes_recovers_a_rotation():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 2))
    angle = 1.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = (target - target.mean(0)) @ rotation * 3.0 + 5.0
    np.testing.assert_allclose(procrustes_onto(moved, target), target, atol=1e-8)


def test_fit_frame_places_copies_on_the_reference_and_caches(tmp_cache):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 5
    reference = np.repeat(centres, 30, axis=0) + rng.normal(size=(120, 8)) * 0.1
    settings = UMAPSettings(n_neighbors=10, n_epochs=60, seed=0)
    coords = fit_frame(reference, {"same": reference[:40], "shifted": reference[80:]}, settings)
    assert coords["reference"].shape == (120, 2) and coords["same"].shape == (40, 2)
    # a copy of a reference point lands near that point's cluster
    spread = np.ptp(coords["reference"], axis=0).max()
    assert np.linalg.norm(coords["same"] - coords["reference"][:40], axis=1).mean() < 0.2 * spread
    cached = list((tmp_cache / "derived" / "umap").glob("*.npz"))
    assert len(cached) == 1
    again = fit_frame(reference, {"same": reference[:40], "shifted": reference[80:]}, settings)
    np.testing.assert_array_equal(again["same"], coords["same"])


def test_umap_kernels_are_compiled_with_numbas_cache():
    """umap-learn's kernels get ``cache=True`` (a later process loads them instead of compiling
    them again, about 13 s a notebook); numba's decorators are given back unchanged."""
    import subprocess
    import sys

    probe = ("import numba; njit = numba.njit\n"
             "from sellakit.viz.maps import _import_umap\n"
             "umap = _import_umap()\n"
             "print(type(umap.umap_.smooth_knn_dist._cache).__name__, numba.njit is njit)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["FunctionCache", "True"]


def test_compiled_kernels_serve_a_later_process_fit(tmp_path):
    """``make install`` calls ``compile_kernels``: a later process's map (a fit and a transform,
    as the notebooks call them) loads every umap-learn and pynndescent kernel it runs from
    numba's cache, compiling none, and the kit's cache is left as it was."""
    import os
    import subprocess
    import sys

    from sellakit.config import repo_root

    makefile = (repo_root() / "Makefile").read_text()
    install = makefile.split("$(STAMP):", 1)[1].split("\ninstall:", 1)[0]
    assert "compile_kernels()" in install  # the install recipe's last step
    env = {**os.environ, "SELLAKIT_CACHE": str(tmp_path / "kit")}
    subprocess.run([sys.executable, "-c", "from sellakit.viz.maps import compile_kernels; "
                    "compile_kernels()"], env=env, check=True, capture_output=True)
    assert not (tmp_path / "kit" / "derived").exists()
    probe = ("import numpy as np, sys\n"
             "from sellakit.viz.maps import UMAPSettings, fit_frame\n"
             "table = np.random.default_rng(1).normal(size=(90, 12)).astype(np.float32)\n"
             "fit_frame(table[:70], {'x': table[70:]}, UMAPSettings(n_neighbors=10, n_epochs=20))\n"
             "from numba.core.registry import CPUDispatcher\n"
             "ran = [v for name, m in list(sys.modules.items()) if name.split('.')[0] in "
             "('umap', 'pynndescent') for v in vars(m).values() "
             "if isinstance(v, CPUDispatcher) and v.signatures]\n"
             "print(len(ran), sum(sum(v.stats.cache_misses.values()) for v in ran))")
    ran, compiled = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                                   capture_output=True, text=True).stdout.split()
    assert int(ran) > 5 and int(compiled) == 0


def test_umap_kernels_compile_without_a_writable_cache():
    """Where numba has no writable folder for its cache it raises RuntimeError at decoration:
    the kernel is then compiled as umap-learn asks, without the cache."""
    from sellakit.viz.maps import _with_cache

    calls = []

    def decorator(*args, **kwargs):
        calls.append(kwargs)
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function 'f': no locator available for file 'x'")
        return lambda function: ("compiled", function, kwargs)

    def kernel():
        return 1

    assert _with_cache(decorator)(fastmath=True)(kernel) == ("compiled", kernel,
                                                             {"fastmath": True})
    assert calls == [{"cache": True, "fastmath": True}, {"fastmath": True}]
