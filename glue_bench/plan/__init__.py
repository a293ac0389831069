"""Plan: sweep files -> job specs under jobs/<sweep>/ and the manifest that `run` follows (no torch)."""
