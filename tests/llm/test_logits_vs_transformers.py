"""Our decoder's logits equal `transformers`' on tiny random Llama and Qwen2 checkpoints."""

import pytest
import torch

from foundry.llm import AttentionMetadata, load_model
from foundry.llm.layers import DecodeGroup


def paged_meta(block_table: torch.Tensor, block_size: int, start: int, qlen: int) -> AttentionMetadata:
    """Metadata for one sequence computing positions [start, start + qlen) over its block table."""
    pos = torch.arange(start, start + qlen)
    slots = block_table[pos // block_size] * block_size + pos % block_size
    ctx = start + qlen
    if qlen == 1 and start > 0:
        nb = block_table.numel()
        mask = (torch.arange(nb * block_size) < ctx).view(1, 1, 1, -1)
        return AttentionMetadata(slots, block_size, decode_groups=[DecodeGroup(1, block_table[None], mask)])
    return AttentionMetadata(slots, block_size, prefill_query_lens=[qlen], prefill_context_lens=[ctx],
                             prefill_block_tables=[block_table])


def check_against_hf(path, hf_model) -> None:
    model, _, _ = load_model(str(path))
    ids = torch.randint(0, 256, (1, 23), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf_model(ids).logits[0]  # [S, V]
        # dense prefill
        h = model(ids[0], torch.arange(23), None, AttentionMetadata.dense([23]))
        torch.testing.assert_close(model.compute_logits(h), ref, atol=1e-4, rtol=1e-4)
        # paged: a 9-token prefill chunk, a 6-token chunk, then one token at a time, over scattered blocks
        cfg, bs = model.config, 4
        caches = [(torch.zeros(cfg.num_kv_heads, 16, bs, cfg.head_dim),
                   torch.zeros(cfg.num_kv_heads, 16, bs, cfg.head_dim)) for _ in range(cfg.num_layers)]
        table = torch.tensor([11, 3, 7, 0, 15, 2])
        out, pos = [], 0
        for qlen in [9, 6] + [1] * 8:
            meta = paged_meta(table, bs, pos, qlen)
            h = model(ids[0, pos:pos + qlen], torch.arange(pos, pos + qlen), caches, meta)
            out.append(model.compute_logits(h))
            pos += qlen
        torch.testing.assert_close(torch.cat(out), ref, atol=1e-4, rtol=1e-4)


def test_llama_logits_match(llama_dir):
    check_against_hf(*llama_dir)


def test_qwen2_logits_match_with_biases_and_tied_embeddings(tmp_path, hf_checkpoint):
    hf = hf_checkpoint(tmp_path, "qwen2", tie_word_embeddings=True, rope_theta=1e6)
    assert hf.model.layers[0].self_attn.q_proj.bias is not None
    check_against_hf(tmp_path, hf)


def test_llama3_rope_scaling_and_attention_bias(tmp_path, hf_checkpoint):
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16, "rope_theta": 500000.0}
    hf = hf_checkpoint(tmp_path, "llama", rope_parameters=scaling, attention_bias=True, head_dim=32)
    check_against_hf(tmp_path, hf)


def test_sharded_checkpoint_loads(tmp_path, llama_dir):
    _, hf = llama_dir
    hf.save_pretrained(tmp_path, max_shard_size="50KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    (tmp_path / "tokenizer.json").write_bytes((llama_dir[0] / "tokenizer.json").read_bytes())
    check_against_hf(tmp_path, hf)


def test_bad_checkpoint_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="model"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}')
    with pytest.raises(ValueError, match="architectures"):
        load_model(str(tmp_path))
