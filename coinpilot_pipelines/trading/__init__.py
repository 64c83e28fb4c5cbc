"""The trading path: signals, paper trades, risk, AI review and the guarded order executor."""
