"""LLM backbone and item semantic embeddings, on the UNTRAINED tiny stand-in model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sellakit.llm import item_semantic_embeddings, tiny_random_llama


@pytest.fixture(scope="module")
def tiny():
    return tiny_random_llama()


def test_tiny_model_says_what_it_is(tiny):
    assert "UNTRAINED" in tiny.name and "UNTRAINED" in repr(tiny)
    assert tiny.tokenizer.padding_side == "left"


def test_embedding_is_final_position_last_layer(tiny, tmp_cache):
    titles = ["Toy Story (1995)", "Heat (1995)", "A much longer title than the others (2000)"]
    table = item_semantic_embeddings(tiny, titles, batch_size=2, progress=False)
    assert table.shape == (3, tiny.hidden_size) and table.dtype == np.float32
    for row, title in enumerate(titles):  # one prompt at a time, no padding at all
        encoded = tiny.tokenizer([f"Movie: {title}"], return_tensors="pt")
        with torch.no_grad():
            out = tiny.model(**encoded, output_hidden_states=True)
        np.testing.assert_allclose(table[row], out.hidden_states[-1][0, -1].numpy(), atol=1e-5)


def test_padding_row_is_zero_and_cache_is_used(tiny, tmp_cache):
    table = item_semantic_embeddings(tiny, ["", "Heat (1995)"], progress=False)
    assert not table[0].any() and table[1].any()
    cached = list((tmp_cache / "derived" / "semantic").glob("*.npz"))
    assert len(cached) == 1
    from sellakit.cache import _savez  # written as the kit writes (sealed): a hit, not forged

    with np.load(cached[0]) as stored:  # the next call must read it, not recompute
        _savez(cached[0], {**{n: stored[n] for n in ("titles", "source")}, "table": table * 0 + 7})
    again = item_semantic_embeddings(tiny, ["", "Heat (1995)"], progress=False)
    assert (again == 7).all()
    other = item_semantic_embeddings(tiny, ["", "Heat (1995)"], template="Film: {title}",
                                     progress=False)
    assert not (other == 7).all()


def test_titles_extracted_before_are_read_not_run(tiny, tmp_cache, monkeypatch):
    """A second list (notebook 08's titles after notebook 03's) runs only its new titles."""
    import sellakit.llm.semantic as semantic

    first = item_semantic_embeddings(tiny, ["Toy Story (1995)", "Heat (1995)"], progress=False)
    ran = []
    extract = semantic._extract
    monkeypatch.setattr(semantic, "_extract", lambda model, backbone, titles, *rest:
                        ran.append(list(titles)) or extract(model, backbone, titles, *rest))
    titles = ["", "Heat (1995)", "Casino (1995)", "Toy Story (1995)"]
    table = item_semantic_embeddings(tiny, titles, progress=False)
    assert ran == [["Casino (1995)"]]
    np.testing.assert_array_equal(table[[1, 3]], first[[1, 0]])
    assert not table[0].any()
    fresh = item_semantic_embeddings(tiny, titles, use_cache=False, progress=False)
    np.testing.assert_allclose(table, fresh, atol=1e-5)  # as if every title ran together
    other = item_semantic_embeddings(tiny, titles, template="Film: {title}", progress=False)
    assert ran[-1] == sorted(filter(None, titles)) and not np.allclose(other[1], table[1])


def test_template_needs_a_placeholder(tiny):
    with pytest.raises(ValueError, match="placeholder"):
        item_semantic_embeddings(tiny, ["x"], template="Movie:", progress=False)


def test_with_a_lora_adapter(tiny, tmp_cache, tmp_path):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(tiny.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    base = peft_model.unload()
    tiny.model = base
    plain = item_semantic_embeddings(tiny, ["Heat (1995)"], progress=False)
    adapted = item_semantic_embeddings(tiny, ["Heat (1995)"], adapter=str(tmp_path / "adapter"),
                                       progress=False)
    assert not np.allclose(plain, adapted)
    again = item_semantic_embeddings(tiny, ["Heat (1995)"], use_cache=False, progress=False)
    np.testing.assert_allclose(plain, again, atol=1e-6)  # the adapter was taken off again


def test_unknown_model_gives_a_clear_error(tmp_path):
    from sellakit.errors import DataError
    from sellakit.llm import load_backbone

    with pytest.raises(DataError, match="Could not load the model"):
        load_backbone(str(tmp_path / "no-such-model"))


def test_llm_stage_imports_nothing_downstream():
    """Stages import upstream only (data -> cf -> llm -> align -> rec): llm knows neither the
    alignment nor the recommendation layer."""
    import ast

    import sellakit.llm

    for path in Path(sellakit.llm.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("sellakit.align", "sellakit.rec")), \
                    f"{path.name} imports {name}"


def test_other_weights_anywhere_give_another_cache_entry(tmp_cache):
    """The item-table key covers every weight, not a slice of the input embeddings."""
    from sellakit.llm import tiny_random_llama

    first = tiny_random_llama()
    item_semantic_embeddings(first, ["Heat (1995)"], progress=False)
    second = tiny_random_llama()
    with torch.no_grad():  # change one weight deep inside, none of the embeddings
        second.model.model.layers[-1].mlp.down_proj.weight[0, 0] += 1.0
    item_semantic_embeddings(second, ["Heat (1995)"], progress=False)
    assert len(list((tmp_cache / "derived" / "semantic").glob("*.npz"))) == 2


def test_cpu_bf16_states_are_kept_apart_and_float32_is_float32(tiny, tmp_cache):
    """``cpu_bf16`` (the quick notebooks): bfloat16 states where the CPU has them natively,
    under their own cache key, so float32 and bfloat16 rows never mix; without it the states
    are float32 even inside a caller's autocast."""
    from sellakit.config import cpu_bf16_active

    titles = ["Toy Story (1995)", "Heat (1995)", "Casino (1995)"]
    plain = item_semantic_embeddings(tiny, titles, use_cache=False, progress=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        guarded = item_semantic_embeddings(tiny, titles, use_cache=False, progress=False)
    np.testing.assert_array_equal(guarded, plain)
    fast = item_semantic_embeddings(tiny, titles, progress=False, cpu_bf16=True)
    entries = len(list((tmp_cache / "derived" / "semantic").glob("*.npz")))
    again = item_semantic_embeddings(tiny, titles, progress=False)
    cosine = (fast * plain).sum(1) / np.linalg.norm(fast, axis=1) / np.linalg.norm(plain, axis=1)
    assert cosine.min() > 0.99
    if cpu_bf16_active(tiny.device, tiny.dtype, True):
        assert not np.array_equal(fast, plain) and entries == 1
        assert len(list((tmp_cache / "derived" / "semantic").glob("*.npz"))) == 2
        np.testing.assert_array_equal(again, plain)  # not read from the bfloat16 entry
    else:  # the switch does nothing here: one entry, float32 states
        np.testing.assert_array_equal(fast, plain)
