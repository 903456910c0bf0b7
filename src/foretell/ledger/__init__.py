"""The prediction ledger: every prediction recorded once, whichever way it was made, with labels joined later."""
