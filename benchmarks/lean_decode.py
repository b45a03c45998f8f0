"""A measuring stick, not library code: greedy decoding with a GPTModel's weights and
as little around the arithmetic as eager PyTorch allows.

No ``nn.Module`` calls, no argument checks, no dropout calls, no decoding rules, no
end-of-sentence handling: per token and layer, one fused QKV product, two writes into a
preallocated cache, one ``scaled_dot_product_attention`` call and the three other
products. Whatever ``toygpt.generate`` or transformers spend beyond this loop's time is
overhead of the library; what this loop spends is the kernels' own time, the floor for
any eager-mode implementation on this machine. The benchmarks check that it picks the
same tokens as ``generate``, then time it beside both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.inference_mode()
def lean_greedy(model, input_ids, max_new_tokens: int, attention_mask=None):
    """``generate(model, input_ids, max_new_tokens, attention_mask=attention_mask)``
    (greedy, no EOS) computed with the bare weights; prompt and new tokens together
    must fit in ``context_length``, and at least one token is new."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    B, P = input_ids.shape
    C = model.token_embedding.embedding_dim
    H = model.blocks[0].attn.num_heads
    D = C // H
    total = P + max_new_tokens
    # the prompt goes through the model's own forward, which fills a KVCache
    cache = model.new_kv_cache()
    logits = model(input_ids, attention_mask=attention_mask, kv_cache=cache)[:, -1]
    kv = cache._kv  # (layers, 2, B, heads, capacity, head_dim)
    real = torch.ones(B, total, dtype=torch.bool)  # True on real tokens
    if attention_mask is not None:
        real[:, :P] = attention_mask.bool()
    key_mask = real[:, None, None, :]  # (B, 1, 1, total): padding is never a key
    position = real[:, :P].sum(dim=1, keepdim=True)  # (B, 1): next position per row
    layers = [
        (
            b.ln1.weight, b.ln1.bias, b.attn.qkv.weight, b.attn.qkv.bias,
            b.attn.proj.weight, b.attn.proj.bias, b.ln2.weight, b.ln2.bias,
            b.ffn[0].weight, b.ffn[0].bias, b.ffn[2].weight, b.ffn[2].bias,
        )
        for b in model.blocks
    ]  # fmt: skip
    token_table = model.token_embedding.weight
    position_table = model.position_encoding.weight
    ln_f, head = model.ln_final, model.output_layer
    token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    out = [input_ids, token]
    for t in range(P, total - 1):
        x = F.embedding(token, token_table) + F.embedding(position, position_table)
        keys = key_mask[..., : t + 1]
        for i, weights in enumerate(layers):
            g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, c1, w2, c2 = weights
            h = F.layer_norm(x, (C,), g1, b1)
            q, k, v = F.linear(h, wqkv, bqkv).view(B, 1, 3, H, D).unbind(2)
            kv[i, 0, :, :, t] = k[:, 0]
            kv[i, 1, :, :, t] = v[:, 0]
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2),
                kv[i, 0, :, :, : t + 1],
                kv[i, 1, :, :, : t + 1],
                attn_mask=None if attention_mask is None else keys,
            )  # (B, heads, 1, head_dim)
            x = x + F.linear(y.transpose(1, 2).reshape(B, 1, C), wo, bo)
            h = F.gelu(F.linear(F.layer_norm(x, (C,), g2, b2), w1, c1))
            x = x + F.linear(h, w2, c2)
        x = F.layer_norm(x, (C,), ln_f.weight, ln_f.bias)
        token = F.linear(x, head.weight, head.bias).argmax(dim=-1)  # (B, 1)
        position = position + 1
        out.append(token)
    return torch.cat(out, dim=1)
