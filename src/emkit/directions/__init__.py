"""Why emergent misalignment happens, at the level of activations: misalignment directions in the
residual stream, steering along them, ablating them, and screening datasets by them before training.

Conventions every module here keeps (so collection, steering and ablation act on the same vectors):

- "layer ``l``" is the output of the model's ``l``-th decoder block (0-based), i.e. transformers'
  ``hidden_states[l + 1]``: the residual stream after that block. :func:`~emkit.directions.layers.decoder_layers`
  finds the blocks from the model's config (``num_hidden_layers``), not from one family's names.
- An activation of a response is the mean over its answer tokens (the positions whose input token
  is part of the reply, teacher-forced after the rendered prompt), accumulated in float32.
- A direction is ``mean(misaligned) - mean(aligned)`` per layer; steering adds
  ``alpha * unit_direction * typical_norm`` to a layer's output at every position; ablation removes
  the component along the unit direction.
"""
