"""Reliability: fault injection, hostile input, fuzzing, token hygiene and the soak."""
