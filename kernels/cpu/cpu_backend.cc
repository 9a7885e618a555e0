// Placeholder: replaced by the real CPU backend.
