"""`make mutation`: the score of mutmut's run and the hand-made mutants mutmut cannot make."""
