"""Private helpers shared by the public modules: the argument checks (:mod:`.checks`) and what
the two noise-injection wrappers have in common (:mod:`.injection`)."""
