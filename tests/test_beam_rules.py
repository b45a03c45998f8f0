"""beam_search with the decoding processors, against transformers' beam search.

To add to tests/ once the "rules" branch (process_logits with repetition_penalty,
no_repeat_ngram_size, allowed_tokens_fn, batch_ids) is merged with "beam": on the beam
branch alone process_logits does not take these keywords yet.
"""

import pytest
import torch
from conftest import sharpen, to_hf_gpt2

from toygpt import GPTModel, beam_search, generate

EOS = 3


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    model = sharpen(GPTModel(16, 32, 4, 2, 0.0, 32), eos=EOS, eos_bias=2.0, seed=1)
    return model, to_hf_gpt2(model)


def hf_beam(hf, ids, num_beams, **kw):
    from transformers import GenerationConfig

    cfg = GenerationConfig(
        do_sample=False,
        num_beams=num_beams,
        max_new_tokens=8,
        eos_token_id=EOS,
        pad_token_id=EOS,
        num_return_sequences=num_beams,
        output_scores=True,
        return_dict_in_generate=True,
        **{k: v for k, v in kw.items() if k != "prefix_allowed_tokens_fn"},
    )
    fn = kw.get("prefix_allowed_tokens_fn")
    mask = torch.ones_like(ids)  # the prompts end in EOS = pad: say there is no padding
    return hf.generate(
        ids, attention_mask=mask, generation_config=cfg, prefix_allowed_tokens_fn=fn
    )


@pytest.mark.parametrize(
    "num_beams, rule",
    [
        (3, dict(repetition_penalty=1.5)),
        (2, dict(repetition_penalty=0.7)),
        (2, dict(no_repeat_ngram_size=2)),
        (3, dict(repetition_penalty=1.3, no_repeat_ngram_size=2)),
        (1, dict(repetition_penalty=1.5)),
        (1, dict(no_repeat_ngram_size=2)),
    ],
)
def test_processors_match_transformers_beam_search(models, num_beams, rule):
    model, hf = models
    ids = torch.randint(0, 16, (3, 5), generator=torch.Generator().manual_seed(3))
    ours = beam_search(
        model,
        ids,
        num_beams=num_beams,
        max_new_tokens=8,
        eos_token_id=EOS,
        num_return_sequences=num_beams,
        **rule,
    )
    theirs = hf_beam(hf, ids, num_beams, **rule)
    assert torch.equal(ours.sequences, theirs.sequences)
    if num_beams > 1:  # transformers' num_beams=1 is greedy: it gives no scores
        assert torch.allclose(ours.scores, theirs.sequences_scores, atol=1e-4)
    else:
        assert torch.equal(
            ours.sequences, generate(model, ids, 8, eos_token_id=EOS, **rule)
        )


def test_allowed_tokens_fn_is_told_each_beams_prompt(models):
    model, hf = models
    ids = torch.randint(0, 16, (3, 5), generator=torch.Generator().manual_seed(3))
    seen = set()

    def fn(batch_id, seq):
        seen.add(batch_id)
        return [EOS, 4 + batch_id, 7 + (len(seq) % 3)]

    ours = beam_search(
        model,
        ids,
        num_beams=2,
        max_new_tokens=8,
        eos_token_id=EOS,
        num_return_sequences=2,
        allowed_tokens_fn=fn,
    )
    assert seen == {0, 1, 2}
    theirs = hf_beam(hf, ids, 2, prefix_allowed_tokens_fn=fn)
    assert torch.equal(ours.sequences, theirs.sequences)
    assert torch.allclose(ours.scores, theirs.sequences_scores, atol=1e-4)


def test_penalties_never_count_the_left_padding(models):
    model, _ = models
    prompt = torch.tensor([[5, 6, 5]])
    padded = torch.tensor([[9, 9, 5, 6, 5]])  # 9 is padding: it must not be penalised
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    kw = dict(num_beams=3, max_new_tokens=6, eos_token_id=EOS, repetition_penalty=2.0)
    one = beam_search(model, prompt, **kw)
    two = beam_search(model, padded, attention_mask=mask, **kw)
    assert torch.equal(two.sequences[:, 2:], one.sequences)
    assert torch.allclose(two.scores, one.scores, atol=1e-5)
