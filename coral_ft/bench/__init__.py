"""`coral-ft bench`: train, sample and evaluate several methods on one recipe, beside the paper."""
