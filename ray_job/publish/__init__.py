"""Stage 6, publish: a finished run -> the Hugging Face Hub (`hub`) or any fsspec URL
(`fsspec_target`), only what changed, never a partial file; `transfer` holds the retries."""
