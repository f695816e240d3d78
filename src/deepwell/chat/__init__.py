"""A reply in the model's own terms: the prompt from its chat template, thinking in prompt
terms, FIM prompts in its FIM tokens, tool calls in its syntax, and the grammars that constrain
decoding. Text and token ids only: nothing here generates, and no wire format is known here."""
