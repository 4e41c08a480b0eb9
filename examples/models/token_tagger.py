"""A small transformer encoder for token classification (named-entity style tagging):
token and position embeddings, two encoder layers, a linear head per token."""
from __future__ import annotations

import torch
from torch import Tensor, nn

VOCAB_SIZE = 8000
MAX_LENGTH = 128
NUM_TAGS = 9  # BIO tags for four entity types, plus O


class TokenTagger(nn.Module):
    def __init__(self, vocab_size: int = VOCAB_SIZE, d_model: int = 96, heads: int = 4, layers: int = 2,
                 feedforward: int = 256, num_tags: int = NUM_TAGS, max_length: int = MAX_LENGTH) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_length, d_model)
        encoder_layer = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, layers, enable_nested_tensor=False)
        self._give_each_layer_its_own_weights()
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_tags)

    def _give_each_layer_its_own_weights(self) -> None:
        # nn.TransformerEncoder deep-copies one layer, so an untrained model's layers share their
        # weights; the ONNX exporters store identical tensors once, which would undercount params.
        for layer in self.encoder.layers:
            layer.self_attn._reset_parameters()
            for linear in (layer.self_attn.out_proj, layer.linear1, layer.linear2):
                linear.reset_parameters()

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens: int64 [batch, length] -> tag logits [batch, length, num_tags]."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens) + self.positions(positions)
        return self.head(self.norm(self.encoder(x)))
