"""posrag's LlamaIndex node postprocessor."""
