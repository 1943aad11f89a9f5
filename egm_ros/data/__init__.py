"""Synthetic occlusion scenes, referring expressions with EGM-style reasoning, and evaluation
records in the EGM authors' format (EGM-Tiny's training data and ``egm-eval``'s inputs)."""
