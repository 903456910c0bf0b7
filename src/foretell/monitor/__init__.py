"""`foretell monitor`: what a model's recorded traffic says about it, read from the prediction ledger."""
