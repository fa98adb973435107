"""A model written by `save_checkpoint` loads back here and in `transformers` with equal logits."""

import torch

from foundry.llm import (
    AttentionMetadata,
    ModelConfig,
    build_model,
    build_tiny_tokenizer,
    load_model,
    save_checkpoint,
)


def test_save_load_round_trip_and_transformers_agrees(tmp_path):
    import transformers

    cfg = ModelConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_layers=2, num_heads=4,
                      num_kv_heads=1, max_position_embeddings=128, bos_token_id=256, eos_token_id=257)
    model = build_model(cfg, seed=3)
    save_checkpoint(model, build_tiny_tokenizer(), tmp_path)
    loaded, tok, name = load_model(str(tmp_path))
    assert name == tmp_path.name and tok.eos_token_id == 257
    ids = torch.arange(5, 40)
    with torch.no_grad():
        ours = model.compute_logits(model(ids, torch.arange(35), None, AttentionMetadata.dense([35])))
        again = loaded.compute_logits(loaded(ids, torch.arange(35), None, AttentionMetadata.dense([35])))
        hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
        theirs = hf(ids[None]).logits[0]
    torch.testing.assert_close(again, ours)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


def test_foundry_tiny_is_deterministic_per_seed():
    a, _, _ = load_model("foundry-tiny", seed=0)
    b, _, _ = load_model("foundry-tiny", seed=0)
    c, _, _ = load_model("foundry-tiny", seed=1)
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
