"""foundry-tiny's byte-level tokenizer and the chat template."""

import pytest

from foundry.llm import build_tiny_tokenizer


def test_round_trip_including_multibyte_text():
    tok = build_tiny_tokenizer()
    for text in ["hello world", "  spaces\tand\nlines ", "héllo — 日本語 🙂", ""]:
        ids = tok.encode(text)
        assert len(ids) == len(text.encode("utf-8"))  # one id per byte
        assert all(0 <= i < 256 for i in ids)
        assert tok.decode(ids) == text


def test_special_tokens_are_ids_above_bytes_and_skipped_in_decode():
    tok = build_tiny_tokenizer()
    assert tok.eos_token_id == 257 and tok.bos_token_id == 256
    assert tok.decode([104, tok.eos_token_id, 105]) == "hi"
    assert tok.encode("<|eos|>") == [tok.eos_token_id]


def test_chat_template():
    tok = build_tiny_tokenizer()
    text = tok.apply_chat_template([{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": "hi"}])
    assert text == "<|system|>be brief\n<|user|>hi\n<|assistant|>"
    with pytest.raises(ValueError, match="messages"):
        tok.apply_chat_template([{"content": "no role"}])


def test_checkpoint_post_processor_adds_bos_once(tmp_path):
    from tokenizers import processors

    from foundry.llm.tokenizer import Tokenizer

    tiny = build_tiny_tokenizer()
    tiny._tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", special_tokens=[("<|bos|>", tiny.bos_token_id)])  # as Llama's tokenizer.json
    tiny._tok.save(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer.from_dir(tmp_path, eos_token_id=257, bos_token_id=256)
    assert tok.encode("hi") == [256, 104, 105]
    assert tok.encode("<|bos|>hi") == [256, 104, 105]  # a template that writes BOS itself
    assert tok.encode("hi", add_special_tokens=False) == [104, 105]
